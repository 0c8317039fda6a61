"""The README stays one short page that maps the manuals in docs/, and the manuals stay findable
and true to the code: links resolve, every page says who it is for, and the settings and
management commands they name exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_LINES = 250

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"```.*?```", re.S)
# Environment variables the docs mention, by the prefixes the settings use.
SETTING = re.compile(
    r"\b((?:DJANGO|HM|CLEARANCE|IMPORT|TELEMETRY|SIMULATOR|CELERY|DATABASE|CACHE|FIELD|MAP|"
    r"VEHICLE|WEB|WORKER|DEMO|LOG|FLEETPORTAL|ALERT|DELIVERY|OUTGOING|EMAIL|NOTIFICATION)_[A-Z0-9_]*[A-Z0-9])\b"
)
COMMAND = re.compile(r"manage\.py (\w+)")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = CODE_BLOCK.sub("", page.read_text())
    return {_anchor(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}


def test_the_readme_is_one_short_page():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move manuals into docs/"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_docs_page_is_linked_from_the_readme(page):
    targets = {target.split("#")[0] for target in LINK.findall(README.read_text())}
    assert f"docs/{page.name}" in targets, f"add docs/{page.name} to the README's documentation map"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_docs_page_starts_by_saying_who_it_is_for(page):
    paragraphs = [p.strip() for p in page.read_text().split("\n\n") if p.strip()]
    assert paragraphs[0].startswith("# "), f"{page.name} starts with its title"
    assert paragraphs[1].startswith("For "), (
        f"{page.name}: the first sentence after the title says who the page is for"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(page):
    broken = []
    for target in LINK.findall(CODE_BLOCK.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (
            anchor and linked.suffix == ".md" and anchor not in _anchors(linked)
        ):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def _known_settings() -> set[str]:
    known = set()
    # settings.py and the settings_*.py modules it imports (durable work, telemetry, ...).
    sources = [ROOT / ".env.example", ROOT / "Procfile", *ROOT.glob("fleetportal/settings*.py")]
    for source in sources:
        known |= set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", source.read_text()))
    for source in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py")]:
        known |= set(re.findall(r"environ[^\"\n]*\"([A-Z][A-Z0-9_]+)\"", source.read_text()))
    return known


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_settings_named_in_the_docs_exist(page):
    unknown = set(SETTING.findall(page.read_text())) - _known_settings()
    assert not unknown, f"{page.name} names settings that do not exist: {sorted(unknown)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_management_commands_named_in_the_docs_exist(page):
    commands = {
        path.stem
        for pattern in ("*/management/commands/*.py", "*/*/management/commands/*.py")
        for path in ROOT.glob(pattern)
    }
    commands |= {"migrate", "check", "collectstatic", "makemigrations"}
    unknown = set(COMMAND.findall(page.read_text())) - commands
    assert not unknown, f"{page.name} names management commands that do not exist: {unknown}"
