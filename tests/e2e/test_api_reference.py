"""The API reference page in a real Chromium: Swagger UI from our own static files renders the
published OpenAPI document with the CSP intact (no CDN, no violation)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_api_reference_renders_under_the_csp(
    transactional_db, live_server, new_page, screenshots
):
    from playwright.sync_api import expect

    page = new_page()
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{live_server.url}/api/v1/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("FleetPortal API")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/changes")).to_be_visible()
    page.screenshot(path=str(screenshots / "api-reference.png"), full_page=False)
    assert all(url.startswith(live_server.url) or url.startswith("data:") for url in requested), (
        requested
    )
    assert not page.problems, "\n".join(page.problems)
