"""A paused login in a real Chromium against live_server: after five wrong passwords the login
page says until when logging in is paused, and refuses the right password meanwhile."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_paused_login_says_until_when_in_the_browser(
    transactional_db, live_server, new_page, owner_user, screenshots
):
    from playwright.sync_api import expect

    page = new_page()
    for _ in range(5):
        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", owner_user.get_username())
        page.fill("input[name=password]", "not the password")
        page.click("button[type=submit]")
    alert = page.locator(".alert-error")
    expect(alert).to_contain_text(f"Logging in as “{owner_user.get_username()}” is paused until")
    # The right password is refused too until the pause ends.
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".alert-error")).to_contain_text("even the right password is refused")
    assert "/login/" in page.url
    page.screenshot(path=str(screenshots / "login-paused.png"), full_page=True)
    # The paused page is answered with 429 Too Many Requests, which Chromium reports in the console.
    problems = [p for p in page.problems if "status of 429 (Too Many Requests)" not in p]
    assert not problems, "\n".join(problems)
