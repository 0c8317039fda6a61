"""Browser test fixtures: Debian's Chromium (/usr/bin/chromium, never a downloaded browser) driven
by Playwright against `live_server`. Under CI=true a missing Chromium fails (tests.utils.require).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib

import pytest

from tests.utils import require

# Playwright's sync API runs an event loop in this thread; our ORM calls are plain sync code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory
# The machines have no internet: map tiles (OpenStreetMap's by default) are served by the
# browser context itself, and every tile URL a page asks for is kept in `page.tile_requests`.
TILE_URL_PATTERN = "https://tile.openstreetmap.org/**"


def _tile_png(size: int = 256) -> bytes:
    """A plain light tile (a real PNG, so Leaflet shows it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xe8\xee\xe4" * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


TILE_PNG = _tile_png()


def chromium_works() -> bool:
    if not (shutil.which(CHROMIUM) or os.path.exists(CHROMIUM)):
        return False
    try:
        subprocess.run([CHROMIUM, "--version"], capture_output=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


# Module scope: one Playwright (sync API) may run per thread at a time, and other e2e modules may
# start their own; the browser is closed when the module's tests are done.
@pytest.fixture(scope="module")
def browser():
    require(chromium_works(), f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover
        require(False, "playwright is not installed")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def screenshots(settings):
    folder = settings.VAR_DIR / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def new_page(browser):
    """new_page(viewport=...) -> a fresh page in its own context that records console errors
    (CSP violations show up there) in `page.problems`."""
    contexts = []

    def make(*, width: int = 1280, height: int = 1000):
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        # Say which file/line broke the CSP (the console message alone does not).
        context.add_init_script(
            "document.addEventListener('securitypolicyviolation', function (e) {"
            " console.error('CSP ' + e.violatedDirective + ' at ' + e.sourceFile + ':'"
            " + e.lineNumber + ':' + e.columnNumber + ' ' + (e.sample || '')); });"
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.tile_requests = []

        def serve_tile(route, request):
            page.tile_requests.append(request.url)
            route.fulfill(status=200, content_type="image/png", body=TILE_PNG)

        context.route(TILE_URL_PATTERN, serve_tile)
        page.problems = []
        page.on(
            "console",
            lambda m: page.problems.append(f"{page.url}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda exc: page.problems.append(f"{page.url}: {exc}"))
        return page

    yield make
    for context in contexts:
        context.close()


def log_in(page, live_server, user) -> None:
    """Log in through the real login form."""
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", user.get_username())
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/fleet/**")
