"""Notifications in a real Chromium against live_server, a real Celery worker and the simulator:
the bell counts a rejection live (its poll, paused while the tab is hidden), the notifications
page and its vehicle link, the personal settings page, the rule form and the webhook pages with
a secret shown once and a test event delivered to a local receiver. Screenshots go to
var/screenshots/."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from clearance.services import onboarding
from notifications.models import (
    AlertRule,
    EmailMode,
    EmailSubscription,
    EventDelivery,
    NotificationSettings,
    RuleKind,
    WebhookEndpoint,
)
from simulator import clock as sim_clock
from simulator import webhooks as sim_webhooks
from tests.clearance.lifecycle_helpers import SEED_ODOMETER, vehicles, wire
from tests.conftest import wait_for
from tests.e2e.conftest import log_in
from tests.notifications.conftest import make_rule
from tests.notifications.receiver import start_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LIVE_TIMEOUT_MS = 45_000


@pytest.fixture
def worker(transactional_db, celery_worker, live_server):
    sim_clock.reset()
    yield celery_worker
    sim_clock.reset()


@pytest.fixture
def receiver():
    server = start_receiver()
    yield server
    server.close()


# The bell asks on its own, except on the fleet page, where it rides the page's one poll.
BELL_ASKING_URLS = ("/notifications/bell/", "/fleet/live/")


def watch_bell(page) -> None:
    page.bell_urls = []
    page.on(
        "request",
        lambda request: (
            page.bell_urls.append(request.url)
            if any(part in request.url for part in BELL_ASKING_URLS)
            else None
        ),
    )


def test_the_bell_counts_a_rejection_live_and_leads_to_the_vehicle(
    worker, new_page, live_server, manager_user, organization, settings, screenshots
):
    from playwright.sync_api import expect

    settings.NOTIFICATION_BELL_POLL_SECONDS = 2
    make_rule(organization, RuleKind.CLEARANCE_REJECTED, name="Rejections")
    credential, _app = wire(organization, approval_delay=5)
    (car,) = vehicles(organization, [SEED_ODOMETER], brand="sandbox")  # no odometer: rejected
    onboarding.queue_clearance_requests([car], credential=credential)
    page = new_page()
    watch_bell(page)
    log_in(page, live_server, manager_user)
    bell = page.locator("#bell")
    expect(bell).to_have_attribute("title", "Notifications")
    page.wait_for_function("document.querySelector('#bell .bell-count').textContent === ''")

    sim_clock.advance(timedelta(seconds=10))
    sim_webhooks.detect_changes()  # HM's rejection webhook -> the worker -> the alert
    expect(page.locator("#bell .bell-count")).to_have_text("1", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#bell")).to_have_attribute("title", "Notifications: 1 unread")
    page.screenshot(path=str(screenshots / "notifications-bell.png"))

    # A hidden tab stops asking; shown again, it asks at once.
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'));"
    )
    page.wait_for_timeout(500)
    asked = len(page.bell_urls)
    page.wait_for_timeout(5_000)  # two and a half poll intervals
    assert len(page.bell_urls) == asked
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'));"
    )
    page.wait_for_timeout(1_000)
    assert len(page.bell_urls) > asked

    # The bell leads to the list; the notification to the vehicle, and it is read.
    bell.click()
    page.wait_for_url(f"{live_server.url}/notifications/")
    item = page.locator(".notification").first
    expect(item).to_contain_text("Clearance rejected")
    expect(item).to_contain_text(car.vin)
    expect(item).to_contain_text("odometer")
    page.screenshot(path=str(screenshots / "notifications-list.png"), full_page=True)
    item.locator("a.notification-title").click()
    page.wait_for_url(f"{live_server.url}/fleet/{car.public_id}/")
    expect(page.locator("#bell .bell-count")).to_have_text("")
    assert not page.problems, page.problems


def test_a_viewer_sets_time_zone_digest_and_email_per_rule(
    browser, live_server, viewer_user, organization, screenshots
):
    from playwright.sync_api import expect

    rejections = make_rule(organization, RuleKind.CLEARANCE_REJECTED, name="Rejections")
    battery = make_rule(organization, RuleKind.BATTERY_LOW, name="EV battery", threshold=15)
    context = browser.new_context(
        timezone_id="Europe/Berlin", viewport={"width": 1280, "height": 1000}
    )
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        log_in(page, live_server, viewer_user)
        page.click("nav.mainnav a:has-text('Alerts')")
        page.wait_for_url(f"{live_server.url}/notifications/rules/")
        expect(page.locator("#add-rule")).to_have_count(0)  # viewers see the rules only
        expect(page.locator("body")).to_contain_text("Battery low: below 15 %")
        page.click("a:has-text('My email settings')")
        page.click(".js-browser-zone")
        expect(page.locator("#id_time_zone")).to_have_value("Europe/Berlin")
        page.select_option("#id_digest_hour", "18")
        page.select_option(f"#mode-{rejections.public_id}", "immediate")
        page.select_option(f"#mode-{battery.public_id}", "digest")
        page.screenshot(path=str(screenshots / "notifications-settings.png"), full_page=True)
        page.click("#settings-save")
        expect(page.locator(".toast")).to_contain_text("Your notification settings are saved.")
        expect(page.locator("#id_time_zone")).to_have_value("Europe/Berlin")
        expect(page.locator("body")).to_contain_text("18:00 CET")
        assert not problems, problems
    finally:
        context.close()
    saved = NotificationSettings.objects.get(user=viewer_user)
    assert (saved.time_zone, saved.digest_hour) == ("Europe/Berlin", 18)
    # Only the choice that differs from the rule's default is kept: Rejections follows its rule.
    modes = dict(EmailSubscription.objects.filter(user=viewer_user).values_list("rule", "mode"))
    assert modes == {battery.pk: EmailMode.DIGEST}


def test_a_manager_writes_a_rule_and_is_told_what_is_missing(
    new_page, live_server, manager_user, organization, transactional_db
):
    from playwright.sync_api import expect

    page = new_page()
    log_in(page, live_server, manager_user)
    page.goto(f"{live_server.url}/notifications/rules/")
    page.click("#add-rule")
    page.fill("#id_name", "EV battery in Berlin")
    page.select_option("#id_kind", "battery_low")
    page.fill("#id_tag", "depot=berlin")
    page.click("#rule-save")
    expect(page.locator(".field-error")).to_contain_text("Say how many % for this rule.")
    page.fill("#id_threshold", "15")
    page.click("#rule-save")
    page.wait_for_url(f"{live_server.url}/notifications/rules/")
    row = page.locator("table.rules-table tbody tr").first
    expect(row).to_contain_text("Battery low: below 15 %")
    expect(row).to_contain_text("Tag depot=berlin")
    rule = AlertRule.objects.get()
    assert (rule.threshold, rule.tag_key, rule.tag_value) == (15, "depot", "berlin")
    assert not page.problems, page.problems


def test_an_owner_adds_an_endpoint_sees_the_secret_once_and_sends_a_test_event(
    worker, new_page, live_server, owner_user, organization, receiver, screenshots
):
    from playwright.sync_api import expect

    page = new_page()
    log_in(page, live_server, owner_user)
    page.click("nav.mainnav a:has-text('Webhooks')")
    page.click("#add-endpoint")
    page.fill("#id_url", receiver.url())
    page.check("input[value='clearance.changed']")
    page.check("input[value='alert.fired']")
    page.click("#endpoint-save")
    secret = page.locator("#endpoint-secret").inner_text().strip()
    endpoint = WebhookEndpoint.objects.get()
    assert secret == endpoint.secret and secret.startswith("whsec_")
    page.click("#secret-done")
    expect(page.locator("body")).not_to_contain_text(secret)
    page.click("#send-test")
    expect(page.locator(".toast")).to_contain_text("A test event is on its way")
    (got,) = receiver.wait_for(1)
    assert json.loads(got.body)["type"] == "webhook.test"

    # The worker records the delivery after the receiver answered.
    wait_for(
        lambda: EventDelivery.objects.filter(state="done", delivered_at__isnull=False).exists(),
        message="the delivery recorded as delivered",
    )
    page.reload()
    row = page.locator(".deliveries-table tbody tr").first
    expect(row).to_contain_text("webhook.test")
    expect(row).to_contain_text("Delivered")
    expect(row).to_contain_text("200")
    page.screenshot(path=str(screenshots / "notifications-webhook.png"), full_page=True)
    row.locator("button:has-text('Redeliver')").click()
    receiver.wait_for(2)
    assert receiver.received[0].header("FleetPortal-Event-Id") == receiver.received[1].header(
        "FleetPortal-Event-Id"
    )
    assert not page.problems, page.problems
