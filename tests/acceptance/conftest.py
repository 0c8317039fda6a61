"""The fleet manager's journey against a running production build (gunicorn, DJANGO_DEBUG=0,
collected static files, Celery workers and beat, the simulator), never against the test runner.

    ACCEPTANCE_BASE_URL=http://127.0.0.1:8765 ACCEPTANCE_USERNAME=demo ACCEPTANCE_PASSWORD=... \
        make test PYTEST_ARGS=tests/acceptance

scripts/production_local.sh acceptance (`make acceptance`, CI) starts that server, runs this and
checks the server's logs. The server needs SIMULATOR_ENABLED=1 and an organization whose owner
logs in with these credentials and which has a simulator credential (`manage.py demo`).
ACCEPTANCE_STATIC_MANIFEST (the server's staticfiles.json) makes the static check compare every
asset with the manifest.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.conftest import browser, new_page  # noqa: F401 (fixtures: Debian's Chromium)

BASE_URL = os.environ.get("ACCEPTANCE_BASE_URL", "").rstrip("/")
STATIC_URL = "/static/"

# Without a server URL there is nothing to run against: not collected (rather than skipped), so
# `make test` stays quiet and CI never shows a skip; the acceptance step gives the URL.
collect_ignore_glob = [] if BASE_URL else ["test_*.py"]


@pytest.fixture(scope="session")
def base_url() -> str:
    """The server, checked once: unreachable or unhealthy fails the journey (never skips it)."""
    try:
        with urllib.request.urlopen(f"{BASE_URL}/healthz", timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        pytest.fail(f"ACCEPTANCE_BASE_URL={BASE_URL} cannot be reached: {exc}")
    if status != 200:
        pytest.fail(f"{BASE_URL}/healthz answered {status}: the server is not healthy")
    return BASE_URL


@dataclass(frozen=True)
class Login:
    username: str
    password: str = field(repr=False)  # never in a failure's output


@pytest.fixture(scope="session")
def login() -> Login:
    password = os.environ.get("ACCEPTANCE_PASSWORD", "")
    if not password:
        pytest.fail("Set ACCEPTANCE_PASSWORD (and ACCEPTANCE_USERNAME) to an owner's login.")
    return Login(os.environ.get("ACCEPTANCE_USERNAME", "demo"), password)


@pytest.fixture(scope="session")
def static_manifest() -> Path | None:
    path = os.environ.get("ACCEPTANCE_STATIC_MANIFEST", "")
    if path and not Path(path).is_file():
        pytest.fail(f"ACCEPTANCE_STATIC_MANIFEST={path} does not exist")
    return Path(path) if path else None


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots and the exported file, kept for a look after a failure."""
    folder = Path(os.environ.get("ACCEPTANCE_ARTIFACTS_DIR", "var/acceptance"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Traffic:
    """What the browser asked for and got: every static file it requested (a response the
    browser blocks, such as an error page for a stylesheet, arrives as no response at all, so
    each is fetched again later), the statuses it saw for them, and any 5xx."""

    def __init__(self, context, base_url: str):
        self.base_url = base_url
        self.static_requested: set[str] = set()
        self.static: dict[str, int] = {}
        self.server_errors: list[str] = []
        context.on("request", self._asked)
        context.on("response", self._seen)

    def _asked(self, request) -> None:
        if request.url.startswith(self.base_url + STATIC_URL):
            self.static_requested.add(request.url)

    def _seen(self, response) -> None:
        if response.url.startswith(self.base_url + STATIC_URL):
            self.static[response.url] = response.status
        if response.status >= 500:
            self.server_errors.append(f"{response.status} {response.request.method} {response.url}")


@pytest.fixture
def page(base_url, login, new_page):  # noqa: F811 (new_page is the fixture imported above)
    """A page logged in as the owner, recording the traffic; no server error, no console error."""
    page = new_page()
    page.traffic = Traffic(page.context, base_url)
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", login.username)
    page.fill("input[name=password]", login.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/fleet/**")
    assert not page.traffic.server_errors, "\n".join(page.traffic.server_errors)
    yield page
    assert not page.traffic.server_errors, "\n".join(page.traffic.server_errors)
    assert not page.problems, "\n".join(page.problems)
