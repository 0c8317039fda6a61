"""The credential pages in a real Chromium: mode-dependent fields, add, live test connection.

Screenshots go to var/screenshots/. Console errors (CSP violations included) fail the test.
"""

from __future__ import annotations

import os
import shutil

import pytest

from clearance.models import Credential
from simulator import services as sim
from tests.conftest import logged_in_client
from tests.utils import require

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    require(shutil.which(CHROMIUM) or os.path.exists(CHROMIUM), f"Chromium is not at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def owner_page(browser, live_server, owner_user, organization):
    client = logged_in_client(owner_user, organization)
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page = context.new_page()
    page.problems = []
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: page.problems.append(str(exc)))
    yield page
    context.close()


def test_owner_adds_a_credential_and_tests_it_live(
    owner_page, live_server, transactional_db, celery_worker, settings
):
    page = owner_page
    shots = settings.VAR_DIR / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    _, secrets = sim.create_app("Browser app", approval_delay_seconds=5)

    page.goto(f"{live_server.url}/credentials/add/")
    form = page.locator("form.credential-form")
    page.select_option("select[name=auth_mode]", "private_key")
    assert form.locator("input[name=private_key_file]").is_visible()
    assert not form.locator("input[name=client_secret]").is_visible()
    page.select_option("select[name=auth_mode]", "client_secret")
    assert form.locator("input[name=client_secret]").is_visible()
    assert not form.locator("input[name=private_key_file]").is_visible()

    page.fill("input[name=name]", "Simulated app")
    page.select_option("select[name=environment]", "simulator")
    page.fill("input[name=client_id]", secrets.client_id)
    page.fill("input[name=client_secret]", secrets.client_secret)
    page.fill("input[name=webhook_secret]", "browser-webhook-secret")
    page.screenshot(path=str(shots / "credential-add.png"), full_page=True)
    page.click("button:has-text('Save credential')")
    page.wait_for_url("**/credentials/*/")
    credential = Credential.objects.get(name="Simulated app")
    assert "Simulator" in page.locator("h1").inner_text()
    assert (
        f"/webhooks/high-mobility/{credential.public_id}/"
        in page.locator("#webhook-url").input_value()
    )
    assert secrets.client_secret not in page.content()

    page.click("button:has-text('Test connection')")
    page.wait_for_selector("text=It works", timeout=60_000)
    assert "HM knows 0 vehicles" in page.locator("#credential-check").inner_text()
    page.screenshot(path=str(shots / "credential-detail.png"), full_page=True)

    page.goto(f"{live_server.url}/credentials/")
    assert page.locator("text=Works").first.is_visible()
    page.screenshot(path=str(shots / "credentials.png"), full_page=True)
    assert page.problems == []
