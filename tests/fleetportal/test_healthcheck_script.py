"""The container health check (scripts/healthcheck.py) passes against a server that only
allows the production host name, and fails when the server is unhealthy or refuses the host."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "healthcheck.py"


def run_check(url: str, allowed_hosts: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HEALTHCHECK_URL": url, "DJANGO_ALLOWED_HOSTS": allowed_hosts}
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    ("allowed", "expected"),
    [
        ("fleet.example.com,other.example.com", "fleet.example.com"),
        (" ,.example.com", "example.com"),
        ("*", "localhost"),
        ("", "localhost"),
    ],
)
def test_it_names_a_host_the_allowed_hosts_accept(allowed, expected):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import healthcheck
    finally:
        sys.path.remove(str(SCRIPT.parent))
    assert healthcheck.host_header(allowed) == expected


@pytest.mark.django_db(transaction=True)
def test_it_passes_against_a_server_that_allows_only_the_production_host(live_server, settings):
    settings.ALLOWED_HOSTS = ["fleet.example.com"]
    result = run_check(f"{live_server.url}/healthz", "fleet.example.com")
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db(transaction=True)
def test_it_fails_when_the_server_refuses_the_host(live_server, settings):
    settings.ALLOWED_HOSTS = ["fleet.example.com"]
    result = run_check(f"{live_server.url}/healthz", "elsewhere.example.com")
    assert result.returncode == 1
    assert "400" in result.stderr


def test_it_fails_when_nothing_answers():
    result = run_check("http://127.0.0.1:9/healthz", "fleet.example.com")
    assert result.returncode == 1
    assert "health check failed" in result.stderr
