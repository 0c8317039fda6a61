"""scripts/production_local.sh and its acceptance journey: the build uses the Dockerfile's own
collectstatic environment, the log check finds 5xx answers and errors, the report check wants
passed tests only, and tests/acceptance is not collected without a server URL but fails (never
skips) when the URL answers nothing."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.report import JunitCounts, junit_counts, log_problems, main

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "production_local.sh"


def _assignments(text: str) -> dict[str, str]:
    return dict(re.findall(r"\b([A-Z_]+)=([^\s\\)]+)", text))


def test_the_build_collects_static_files_with_the_dockerfiles_environment():
    dockerfile = (ROOT / "Dockerfile").read_text()
    run = re.search(r"^RUN (.*?)python manage\.py collectstatic --noinput", dockerfile, re.M | re.S)
    assert run, "the Dockerfile has no collectstatic step"
    env_line = re.search(r"^ENV (.*?)\n(?!\s)", dockerfile, re.M | re.S)[1]
    script = SCRIPT.read_text()
    collect = re.search(r"^collectstatic_env=\((.*?)^\)", script, re.M | re.S)[1]
    dockerfile_env = re.search(r"^dockerfile_env=\((.*?)\)", script, re.M)[1]
    assert _assignments(collect) == _assignments(run[1])
    expected = _assignments(env_line)
    script_env = _assignments(dockerfile_env)
    assert set(script_env) == set(expected)
    assert {k: v for k, v in script_env.items() if k != "FLEETPORTAL_VAR_DIR"} == {
        k: v for k, v in expected.items() if k != "FLEETPORTAL_VAR_DIR"
    }


def test_the_processes_are_the_procfiles():
    script = SCRIPT.read_text()
    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ": " in line
    )
    started = re.search(r"for name in ([a-z ]+); do start", script)[1].split()
    assert started == ["web", "worker", "importer", "beat"]
    assert set(started) <= set(procfile)
    assert "simulator" in procfile["worker"]  # the simulator's tasks have a worker


ACCESS = '127.0.0.1 - - [01/Dec/2026:14:30:17 +0000] "{request}" {status} 49 "-" "agent"'


@pytest.mark.parametrize(
    ("name", "line", "found"),
    [
        ("web.log", ACCESS.format(request="GET /fleet/ HTTP/1.1", status=200), False),
        ("web.log", ACCESS.format(request="GET /fleet/x/ HTTP/1.1", status=404), False),
        ("web.log", ACCESS.format(request="GET /fleet/ HTTP/1.1", status=500), True),
        ("web.log", ACCESS.format(request="POST /simulator/v1/x HTTP/1.1", status=503), True),
        ("web.log", "2026-12-01 14:31:11,397 WARNING django.request 404 GET /x/ user=1", False),
        ("web.log", "2026-12-01 14:31:11,397 ERROR django.request Internal Server Error: /", True),
        ("web.log", "[2026-12-01 14:28:48 +0000] [24937] [CRITICAL] WORKER TIMEOUT (pid:1)", True),
        ("worker.log", "[2026-12-01 14:30:17,001: INFO/MainProcess] Task x succeeded", False),
        ("worker.log", "[2026-12-01 14:30:17,001: ERROR/ForkPoolWorker-1] Task x raised", True),
        ("worker.log", "Traceback (most recent call last):", True),
        (
            "worker.log",
            "[...: INFO/ForkPoolWorker-2] Task x retry: Retry in 5s: HMServerError()",
            True,
        ),
        ("importer.log", "WebhookNotDelivered('webhook delivery 3 not accepted')", True),
    ],
)
def test_log_problems_are_5xx_answers_and_errors(tmp_path, name, line, found):
    (tmp_path / name).write_text(f"{line}\n")
    (tmp_path / "other.txt").write_text("Traceback (most recent call last):\n")  # not a log
    problems = log_problems(tmp_path)
    assert bool(problems) is found, problems
    if found:
        assert problems[0].startswith(f"{name}:1: ")


def _junit(tmp_path, **counts) -> Path:
    attributes = " ".join(f'{key}="{value}"' for key, value in counts.items())
    path = tmp_path / "report.xml"
    path.write_text(f'<testsuites><testsuite name="pytest" {attributes}/></testsuites>')
    return path


@pytest.mark.parametrize(
    ("counts", "ok"),
    [
        ({"tests": 2, "failures": 0, "errors": 0, "skipped": 0}, True),
        ({"tests": 0, "failures": 0, "errors": 0, "skipped": 0}, False),
        ({"tests": 2, "failures": 0, "errors": 0, "skipped": 1}, False),
        ({"tests": 2, "failures": 1, "errors": 0, "skipped": 0}, False),
        ({"tests": 2, "failures": 0, "errors": 1, "skipped": 0}, False),
    ],
)
def test_the_journey_counts_only_when_everything_passed(tmp_path, counts, ok):
    report = _junit(tmp_path, **counts)
    assert junit_counts(report) == JunitCounts(**counts)
    assert (main(["junit", str(report)]) == 0) is ok


def test_a_missing_report_means_the_journey_did_not_run(tmp_path, capsys):
    assert main(["junit", str(tmp_path / "none.xml")]) == 1
    assert "did not run" in capsys.readouterr().out


def _pytest_acceptance(extra_env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCEPTANCE_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/acceptance", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env={**env, **extra_env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_a_server_url_the_journey_is_not_collected():
    result = _pytest_acceptance({}, "--collect-only", "-q")
    assert result.returncode == 5, result.stdout + result.stderr  # no tests collected
    assert "skipped" not in result.stdout


def test_an_unreachable_server_fails_the_journey_instead_of_skipping():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = _pytest_acceptance(
        {"ACCEPTANCE_BASE_URL": f"http://127.0.0.1:{port}", "ACCEPTANCE_PASSWORD": "x"},
        "-q",
        "-o",
        "addopts=",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "cannot be reached" in output
    assert "skipped" not in output
    journeys = sum(
        path.read_text().count("\ndef test_")
        for path in (ROOT / "tests" / "acceptance").glob("test_*.py")
    )
    assert re.search(rf"\b{journeys} errors?\b", output), output
