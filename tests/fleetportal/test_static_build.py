"""The production static build: `collectstatic` with the storage production uses
(CompressedManifestStaticFilesStorage, strict manifest) succeeds from the repository's static
files, every file a CSS or JS file references (url(), sourceMappingURL) is shipped, and every
static file a template names is in the manifest. A missing one makes the image build fail, or
every page that names it answer 500."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django_htmx.jinja import htmx_script

ROOT = Path(__file__).resolve().parents[2]
# The Dockerfile's build step sets only these (DJANGO_DEBUG unset means production).
DOCKERFILE_BUILD_ENV = {
    "DJANGO_SECRET_KEY": "collectstatic-only",
    "FIELD_ENCRYPTION_KEYS": "ZmFrZS1rZXktZm9yLWNvbGxlY3RzdGF0aWMtb25seSE=",
}
# `{% static 'path' %}` with a literal path, in any template.
STATIC_TAG = re.compile(r"""{%\s*static\s+(['"])(?P<path>[^'"]+)\1""")
HASHED_NAME = re.compile(r"\.[0-9a-f]{12}(\.[^./]+)?$")


def _production_static_storage() -> dict:
    """settings.STORAGES["staticfiles"] as production (the Dockerfile's env) computes it."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.STORAGES['staticfiles']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "fleetportal.settings",
            **DOCKERFILE_BUILD_ENV,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def production_static_storage() -> dict:
    return _production_static_storage()


@pytest.fixture
def collected(tmp_path, settings, production_static_storage):
    """collectstatic into a temporary STATIC_ROOT with the production storage; its manifest."""
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    settings.STORAGES = {**settings.STORAGES, "staticfiles": production_static_storage}
    call_command("collectstatic", interactive=False, verbosity=0)
    manifest = json.loads((settings.STATIC_ROOT / "staticfiles.json").read_text())
    return settings.STATIC_ROOT, manifest["paths"]


def test_production_uses_the_strict_manifest_storage(production_static_storage):
    assert production_static_storage == {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
    }


def test_collectstatic_ships_every_file_the_static_files_reference(collected):
    """Django's manifest storage fails collectstatic on a reference it cannot resolve (a
    vendored script's sourceMappingURL, a stylesheet's url()); it got this far, so each one
    was found. Also every hashed file is there, compressed too."""
    root, paths = collected
    assert staticfiles_storage.manifest_strict
    for name in ("vendor/leaflet/leaflet.js", "vendor/leaflet/leaflet.markercluster.js"):
        assert name in paths
    for original, hashed in paths.items():
        assert HASHED_NAME.search(hashed), f"{original} was not given a hashed name"
        assert (root / hashed).is_file(), f"{hashed} is in the manifest but was not written"
        if hashed.endswith((".js", ".css")):
            assert (root / f"{hashed}.gz").is_file(), f"{hashed} was not compressed"


def test_stylesheet_urls_point_at_hashed_files(collected):
    root, paths = collected
    css = (root / paths["vendor/leaflet/leaflet.css"]).read_text()
    for name in ("layers.png", "layers-2x.png", "marker-icon.png"):
        hashed = Path(paths[f"vendor/leaflet/images/{name}"]).name
        assert f"url(images/{hashed})" in css or f'url("images/{hashed}")' in css


def test_every_static_file_a_template_names_is_in_the_manifest(collected):
    _root, paths = collected
    templates = [
        path
        for folder in [settings.BASE_DIR / "templates", *ROOT.glob("*/templates")]
        for path in folder.rglob("*.html")
    ]
    named = {
        (template.relative_to(ROOT), match["path"])
        for template in templates
        for match in STATIC_TAG.finditer(template.read_text())
    }
    assert len(named) >= 10, "the templates' static tags were not found"
    missing = sorted(f"{template}: {path}" for template, path in named if path not in paths)
    assert not missing, "Not in the static manifest:\n" + "\n".join(missing)
    # base.html's {% htmx_script %} resolves django-htmx's file through the same storage.
    src = re.search(r'src="([^"]+)"', htmx_script(minified=True))[1]
    assert src.startswith(settings.STATIC_URL) or src.startswith("/" + settings.STATIC_URL)
    assert HASHED_NAME.search(src), src


def test_a_missing_referenced_file_fails_the_build(tmp_path, settings, production_static_storage):
    """What happened with the vendored markercluster: a sourceMappingURL to a file not shipped."""
    source = tmp_path / "static"
    (source / "vendor").mkdir(parents=True)
    (source / "vendor" / "lib.js").write_text("var x;\n//# sourceMappingURL=lib.js.map\n")
    settings.STATICFILES_DIRS = [source]
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    settings.STORAGES = {**settings.STORAGES, "staticfiles": production_static_storage}
    with pytest.raises(CommandError, match=r"lib\.js\.map"):
        call_command("collectstatic", interactive=False, verbosity=0)
