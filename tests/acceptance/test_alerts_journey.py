"""Alerts against the production build: an owner writes two rules for a tag of this run, adds a
vehicle with that tag, refreshes its telemetry, and the production worker fires the alert: the
bell counts it, the notifications page lists it and leads to the vehicle. In production a webhook
endpoint on this machine is refused. The notification pages' static files answer under their
hashed names. Rules of the run are deleted at the end (VINs and tags are new on every run)."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import pytest

from tests.acceptance.conftest import STATIC_URL
from tests.acceptance.test_journey import (
    LIVE_TIMEOUT_MS,
    asset_urls,
    check_static_file,
    manifest_files,
    new_vins,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NOTIFICATION_PAGES = [
    "/notifications/",
    "/notifications/rules/",
    "/notifications/rules/add/",
    "/notifications/settings/",
    "/notifications/webhooks/",
    "/notifications/webhooks/add/",
]


def add_rule(page, base_url: str, name: str, kind: str, threshold: str, tag: str) -> None:
    page.goto(f"{base_url}/notifications/rules/add/")
    page.fill("#id_name", name)
    page.select_option("#id_kind", kind)
    page.fill("#id_threshold", threshold)
    page.fill("#id_tag", tag)
    page.click("#rule-save")
    page.wait_for_url(f"{base_url}/notifications/rules/")


def test_an_alert_fires_in_production_and_reaches_the_bell(page, base_url, artifacts):
    from playwright.sync_api import expect

    serial, (vin,) = new_vins(1)
    tag = f"acceptance{serial}"
    # Every simulated vehicle reports a fuel or a battery level, always below 99 %.
    rules = [(f"Battery {serial}", "battery_low"), (f"Fuel {serial}", "fuel_low")]
    for name, kind in rules:
        add_rule(page, base_url, name, kind, "99", tag)
    expect(page.locator("body")).to_contain_text(f"Tag {tag}")

    page.goto(f"{base_url}/fleet/add/")
    page.fill("#id_vin", vin)
    page.select_option("#id_brand", "sandbox")
    page.fill("#id_tags", tag)
    page.click("#add-submit")
    page.wait_for_url(re.compile(r"/fleet/[0-9a-f-]{36}/$"))
    detail_url = page.url
    expect(page.locator("#vehicle-status-badge")).to_have_text("Approved", timeout=LIVE_TIMEOUT_MS)
    page.goto(detail_url)  # the telemetry panel offers Refresh once the page knows it is approved
    panel = page.locator("#telemetry-live")
    panel.get_by_role("button", name="Refresh").click()
    expect(panel.locator(".telemetry-status-ok")).to_be_visible(timeout=LIVE_TIMEOUT_MS)

    # The worker fired the alert when it stored the telemetry.
    page.goto(f"{base_url}/notifications/?q={vin}")
    item = page.locator(".notification").first
    for _ in range(30):
        if item.count():
            break
        page.wait_for_timeout(1_000)
        page.reload()
    expect(item).to_contain_text(vin)
    expect(item).to_contain_text(re.compile(r"(Battery|Fuel) at \d+ %"))
    expect(page.locator("#bell .bell-count")).not_to_have_text("")
    page.screenshot(path=str(artifacts / "5-alert-notification.png"), full_page=True)
    item.locator("a.notification-title").click()
    page.wait_for_url(detail_url)

    # In production, an endpoint on this machine is refused (and HTTPS is required).
    page.goto(f"{base_url}/notifications/webhooks/add/")
    page.fill("#id_url", "http://127.0.0.1:9/hooks")
    page.check("input[value='alert.fired']")
    page.click("#endpoint-save")
    expect(page.locator(".field-error")).to_contain_text("must use https://")
    page.fill("#id_url", "https://127.0.0.1:9/hooks")
    page.click("#endpoint-save")
    expect(page.locator(".field-error")).to_contain_text("is a loopback address")

    page.goto(f"{base_url}/notifications/rules/")
    for name, _kind in rules:
        row = page.locator(f"table.rules-table tbody tr:has-text('{name}')")
        page.once("dialog", lambda dialog: dialog.accept())
        row.locator("button:has-text('Delete')").click()
        expect(page.locator(".toast").first).to_contain_text(f"Rule “{name}” deleted")


def test_the_notification_pages_static_files(page, base_url, static_manifest):
    manifest = manifest_files(static_manifest)
    referenced: set[str] = set()
    for path in NOTIFICATION_PAGES:
        page.goto(urljoin(base_url, path))
        page.wait_for_load_state("networkidle")
        referenced |= asset_urls(page)
    static = {url for url in referenced if url.startswith(base_url + STATIC_URL)}
    assert any("notifications" in url for url in static), sorted(static)
    problems = [p for url in sorted(static) for p in check_static_file(page, url, manifest)]
    assert not problems, "\n".join(problems)
