"""The "docker compose config" step of .ci/run leaves a developer's own .env alone, and only
creates (and then removes) one from .env.example when there is none."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAKE_COMPOSE = """#!/bin/sh
# Stands in for docker-compose v1: records the .env it was run with.
cat .env > compose-saw.env
"""


def _compose_step(tmp_path: Path) -> str:
    """The script from the compose step to the end, run from a copy of the repository root."""
    script = (ROOT / ".ci" / "run").read_text()
    start = script.index('step "docker compose config"')
    return 'set -euo pipefail\nstep() { :; }\ncd "$1"\n' + script[start:]


def _run(tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / ".env.example").write_text("DJANGO_DEBUG=0\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in {"docker-compose": FAKE_COMPOSE, "docker": "#!/bin/sh\nexit 1\n"}.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    return subprocess.run(
        ["bash", "-c", _compose_step(tmp_path), "ci-step", str(tmp_path)],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_developers_env_is_used_and_kept(tmp_path):
    own = "DJANGO_SECRET_KEY=my-own-local-value\n"
    (tmp_path / ".env").write_text(own)
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "compose-saw.env").read_text() == own  # validated, not overwritten
    assert (tmp_path / ".env").read_text() == own  # and still there afterwards


def test_without_an_env_the_example_is_used_then_removed(tmp_path):
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "compose-saw.env").read_text() == "DJANGO_DEBUG=0\n"
    assert not (tmp_path / ".env").exists()
