"""The layering of docs/architecture.md holds, and import-linter would catch a reversed import."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = (
    "clearance",
    "organizations",
    "vehicles",
    "imports",
    "telemetry",
    "notifications",
    "simulator",
    "fleetportal",
    "untrusted",
    "durable",
)


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_code(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def test_the_code_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "reversed_import", "contract"),
    [
        ("vehicles/models.py", "from clearance import models as _", "Apps depend downward only"),
        ("organizations/models.py", "import vehicles.models as _", "Apps depend downward only"),
        (
            "clearance/services/sync.py",
            "from imports import models as _",
            "Apps depend downward only",
        ),
        ("clearance/hm/types.py", "import django as _", "clearance.hm imports nothing"),
        (
            "clearance/hm/client.py",
            "from clearance import models as _",
            "clearance.hm is the bottom",
        ),
        ("clearance/services/defleet.py", "from clearance import views as _", "never import pages"),
        ("vehicles/models.py", "import simulator.models as _", "Only the demo command"),
    ],
)
def test_a_reversed_import_breaks_a_contract(tmp_path, module, reversed_import, contract):
    code = copy_of_the_code(tmp_path)
    path = code / module
    path.write_text(path.read_text() + f"\n{reversed_import}  # noqa\n")
    result = lint_imports(code)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if "BROKEN" in line]
    assert (
        any(contract in line for line in broken)
        or contract in result.stdout.split("Broken contracts")[-1]
    ), result.stdout
