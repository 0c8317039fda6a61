"""The fleet dashboard in a real Chromium against live_server, a real Celery worker and the
simulator over HTTP: add a VIN and watch it go pending -> approved without reloading, defleet it
and watch revoking -> revoked, and a viewer cannot defleet. Screenshots go to var/screenshots/.

Simulator time is travelled with its shared clock (no sleeping for approval delays); the status
changes reach the portal as signed webhooks delivered by the worker, and the page shows them
through htmx polling.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from clearance.models import Clearance
from simulator import clock as sim_clock
from simulator import webhooks as sim_webhooks
from tests.clearance.lifecycle_helpers import wire
from tests.e2e.conftest import log_in
from tests.factories import ClearanceFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VIN = (
    "2HMFLEET800000001"  # ordinary for the simulator (approved after the delay); valid check digit
)
LIVE_TIMEOUT_MS = 45_000


@pytest.fixture
def worker(transactional_db, celery_worker, live_server):
    sim_clock.reset()
    yield celery_worker
    sim_clock.reset()


def travel(delta: timedelta) -> None:
    """Move the simulator's shared clock and let it send the webhooks that became due."""
    sim_clock.advance(delta)
    sim_webhooks.detect_changes()


def mark_document(page) -> None:
    page.evaluate("window.__fleetNoReload = 'still the same document'")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__fleetNoReload") == "still the same document"


def test_add_watch_approval_then_defleet_live(
    worker, new_page, live_server, manager_user, organization, screenshots
):
    from playwright.sync_api import expect

    # A simulated HM app that approves only after an hour, so "pending" is seen for sure.
    credential, _app = wire(organization, approval_delay=3600)
    page = new_page()
    log_in(page, live_server, manager_user)

    # Add a vehicle: the VIN is typed in lower case and normalised; feedback comes inline.
    page.click("a:has-text('Add a vehicle')")
    # Type once the page's scripts are in: htmx listens to the field only from then on.
    page.wait_for_load_state("load")
    page.fill("#id_vin", VIN.lower())
    expect(page.locator("#vin-feedback")).to_contain_text("valid VIN", timeout=10_000)
    page.select_option("#id_brand", "sandbox")
    page.fill("#id_nickname", "Browser van")
    page.fill("#id_odometer_km", "1234")
    page.screenshot(path=str(screenshots / "fleet-add-vehicle.png"), full_page=True)
    page.click("#add-submit")
    page.wait_for_url(f"{live_server.url}/fleet/*-*/")
    clearance = Clearance.objects.select_related("vehicle").get(vehicle__vin=VIN)
    assert clearance.credential == credential
    expect(page.locator(".toast").first).to_contain_text("clearance request is on its way")

    # The overview: the row updates itself queued -> pending -> approved, no reload.
    page.click("nav.mainnav a:has-text('Fleet')")
    row = page.locator(f"#row-{clearance.vehicle.public_id}")
    mark_document(page)
    expect(row.locator(".status")).to_have_text("Pending", timeout=LIVE_TIMEOUT_MS)
    page.screenshot(path=str(screenshots / "fleet-pending.png"), full_page=True)
    travel(timedelta(hours=2))
    expect(row.locator(".status")).to_have_text("Approved", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#counter-approved strong")).to_have_text("1", timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)
    # Terminal: the row no longer polls.
    expect(row).not_to_have_attribute("hx-trigger", "every 3s")
    page.screenshot(path=str(screenshots / "fleet-approved.png"), full_page=True)

    # Detail page: defleet through the confirmation dialog; revoking -> revoked live.
    row.locator("a.mono").click()
    page.wait_for_url(f"{live_server.url}/fleet/{clearance.vehicle.public_id}/")
    expect(page.locator("#vehicle-status-badge")).to_have_text("Approved")
    page.click("#defleet-open")
    dialog = page.locator("#defleet-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Revoking")
    page.screenshot(path=str(screenshots / "fleet-defleet-dialog.png"), full_page=True)
    mark_document(page)
    page.click("#defleet-confirm")
    badge = page.locator("#vehicle-status-badge")
    expect(badge).to_have_text("Revoking", timeout=LIVE_TIMEOUT_MS)
    expect(dialog).not_to_be_visible()
    expect(page.locator(".toast").first).to_contain_text("Defleet sent")
    page.screenshot(path=str(screenshots / "fleet-revoking.png"), full_page=True)
    travel(timedelta(hours=1))
    expect(badge).to_have_text("Revoked", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#timeline")).to_contain_text("Revoked")
    expect(page.locator("#reonboard-button")).to_be_visible()
    assert_not_reloaded(page)
    page.screenshot(path=str(screenshots / "fleet-revoked.png"), full_page=True)
    assert not page.problems, "\n".join(page.problems)


def test_viewer_cannot_defleet(
    transactional_db, new_page, live_server, viewer_user, organization, screenshots
):
    from playwright.sync_api import expect

    clearance = ClearanceFactory(vehicle__organization=organization, status="approved")
    page = new_page(width=390, height=844)  # a phone: the layout must hold up too
    log_in(page, live_server, viewer_user)
    expect(page.locator(f"#row-{clearance.vehicle.public_id}")).to_be_visible()
    assert page.locator("#bulk-form").count() == 0
    page.goto(f"{live_server.url}/fleet/{clearance.vehicle.public_id}/")
    expect(page.locator("#vehicle-status-badge")).to_have_text("Approved")
    assert page.locator("#defleet-open").count() == 0
    assert page.locator("#defleet-dialog").count() == 0
    page.screenshot(path=str(screenshots / "fleet-viewer-detail.png"), full_page=True)

    # Trying anyway (a hand-made request with a valid CSRF token) is refused with 403.
    token = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken']")
    response = page.request.post(
        f"{live_server.url}/fleet/{clearance.vehicle.public_id}/defleet/",
        headers={"X-CSRFToken": token, "HX-Request": "true"},
    )
    assert response.status == 403
    # Refused for the role, not for the CSRF token (the 403 page itself carries a token).
    assert "CSRF verification failed" not in response.text()
    assert "does not allow this" in response.text()
    clearance.refresh_from_db()
    assert clearance.status == "approved"
    assert not page.problems, "\n".join(page.problems)


def test_bulk_defleet_everything_matching_the_filter(
    worker, new_page, live_server, manager_user, organization, screenshots
):
    from playwright.sync_api import expect

    from clearance.services import onboarding
    from tests.clearance.lifecycle_helpers import statuses, vehicles
    from tests.conftest import wait_for

    credential, _app = wire(organization, approval_delay=5)
    matching = ["2HMBULKA00000000A", "2HMBULKB00000000B"]
    vehicles(organization, [*matching, "2HMKEEP0000000001"], brand="sandbox")
    onboarding.queue_clearance_requests(organization.vehicles.all(), credential=credential)
    every = [*matching, "2HMKEEP0000000001"]
    wait_for(lambda: set(statuses(credential).values()) == {"pending"}, message="pending")
    travel(timedelta(minutes=10))
    wait_for(
        lambda: statuses(credential) == dict.fromkeys(every, "approved"),
        timeout=45,
        message="approved",
    )

    page = new_page()
    log_in(page, live_server, manager_user)
    page.fill("#filter-q", "2hmbulk")  # filters as you type, kept in the URL
    expect(page.locator("#fleet-table tbody tr")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"/fleet/\?q=2hmbulk$"))  # pushed by htmx
    page.check("input[name=scope][value=filter]")
    page.click("button[name=action][value=defleet]")
    expect(page.locator("#bulk-effects")).to_contain_text("2 approved vehicle(s) lose data access")
    page.screenshot(path=str(screenshots / "fleet-bulk-confirm.png"), full_page=True)
    page.click("#bulk-confirm")
    page.wait_for_url("**/fleet/?q=2hmbulk")
    expect(page.locator(".toast").first).to_contain_text("Defleeting 2 vehicles")
    mark_document(page)
    rows = page.locator("#fleet-table tbody tr .status")
    for n in range(2):
        expect(rows.nth(n)).to_have_text("Revoking", timeout=LIVE_TIMEOUT_MS)
    travel(timedelta(hours=1))
    for n in range(2):
        expect(rows.nth(n)).to_have_text("Revoked", timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)
    page.screenshot(path=str(screenshots / "fleet-bulk-revoked.png"), full_page=True)
    assert statuses(credential)["2HMKEEP0000000001"] == "approved"
    assert not page.problems, "\n".join(page.problems)


def test_bulk_defleet_refused_by_the_carmaker_shows_on_the_rows(
    worker, new_page, live_server, manager_user, organization, screenshots
):
    """Sandbox vehicles cannot be canceled while pending (like BMW): the confirmation page says
    so beforehand, and after the background defleet the refusal shows on each row, live."""
    from playwright.sync_api import expect

    from clearance.services import onboarding
    from tests.clearance.lifecycle_helpers import statuses, vehicles
    from tests.conftest import wait_for

    credential, _app = wire(organization, approval_delay=3600)
    vins = ["2HMREFUSE0000000A", "2HMREFUSE0000000B"]
    vehicles(organization, vins, brand="sandbox")
    onboarding.queue_clearance_requests(organization.vehicles.all(), credential=credential)
    wait_for(lambda: set(statuses(credential).values()) == {"pending"}, message="pending")

    page = new_page()
    log_in(page, live_server, manager_user)
    page.check("input[name=scope][value=filter]")
    page.click("button[name=action][value=defleet]")
    expect(page.locator("#bulk-effects")).to_contain_text(
        "2 of these pending request(s) will most likely be refused"
    )
    expect(page.locator("#cancel-refusal-note")).to_contain_text("the vehicle stays Pending")
    page.screenshot(path=str(screenshots / "fleet-bulk-cancel-warning.png"), full_page=True)
    page.click("#bulk-confirm")
    page.wait_for_url(f"{live_server.url}/fleet/")
    mark_document(page)
    for vehicle in organization.vehicles.all():
        row = page.locator(f"#row-{vehicle.public_id}")
        expect(row.locator(".row-problem")).to_contain_text(
            "does not allow canceling a pending request", timeout=LIVE_TIMEOUT_MS
        )
        expect(row.locator(".status")).to_have_text("Pending")
    assert_not_reloaded(page)
    page.screenshot(path=str(screenshots / "fleet-bulk-cancel-refused.png"), full_page=True)
    assert set(statuses(credential).values()) == {"pending"}
    assert not page.problems, "\n".join(page.problems)


def test_keyboard_defleet_dialog_starts_on_cancel_and_sorting_keeps_focus(
    transactional_db, new_page, live_server, manager_user, organization
):
    from playwright.sync_api import expect

    approved = ClearanceFactory(vehicle__organization=organization, status="approved")
    ClearanceFactory(vehicle__organization=organization, status="pending")
    page = new_page()
    log_in(page, live_server, manager_user)

    # Sorting by a header (an htmx swap of the table) keeps the focus on that header link.
    # (htmx wires the new table up when it settles; a key pressed before that would be a plain
    # page load, so each step waits for the table to settle.)
    page.evaluate(
        "window.__tableSettled = 0; document.addEventListener('htmx:afterSettle', function (e) {"
        " if (e.target.id === 'fleet-table') window.__tableSettled += 1; });"
    )
    page.focus("#sort-status")
    for n, (key, order) in enumerate(
        [("#sort-status", "ascending"), ("#sort-status", "descending"), ("#sort-vin", "ascending")]
    ):
        if n == 2:
            page.click(key)
        else:
            page.keyboard.press("Enter")
        page.wait_for_function("(n) => window.__tableSettled > n", arg=n)
        expect(page.locator(f"th[aria-sort={order}] {key}")).to_be_visible()
        assert page.evaluate("document.activeElement.id") == key[1:]

    # The defleet dialog opens on Cancel: one Enter closes it and defleets nothing.
    page.goto(f"{live_server.url}/fleet/{approved.vehicle.public_id}/")
    page.focus("#defleet-open")
    page.keyboard.press("Enter")
    dialog = page.locator("#defleet-dialog")
    expect(dialog).to_be_visible()
    assert page.evaluate("document.activeElement.id") == "defleet-cancel"
    page.keyboard.press("Enter")
    expect(dialog).not_to_be_visible()
    approved.refresh_from_db()
    assert approved.status == "approved"
    assert not page.problems, "\n".join(page.problems)


# What overflows the viewport sideways (or its own box), measured in the browser.
OVERFLOW_JS = """(selector) => {
  const box = document.querySelector(selector);
  return {
    page: document.documentElement.scrollWidth - window.innerWidth,
    box: box ? box.scrollWidth - box.clientWidth : null,
  };
}"""


def test_phone_layout_fits_fleet_members_and_credentials(
    transactional_db, new_page, live_server, owner_user, organization, screenshots
):
    from tests.factories import CredentialFactory, MembershipFactory, UserFactory

    credential = CredentialFactory(organization=organization, name="Simulator")
    for n, status in enumerate(["approved", "pending", "canceling", "revoking", "queued"]):
        ClearanceFactory(
            vehicle__organization=organization,
            vehicle__brand="volkswagen",
            vehicle__nickname=f"Delivery van {n}",
            credential=credential,
            status=status,
            last_error="This carmaker does not allow canceling a pending request."
            if status == "pending"
            else "",
        )
    for n in range(3):
        MembershipFactory(
            organization=organization,
            role="manager",
            user=UserFactory(
                username=f"dispatcher.with.a.long.name{n}",
                email=f"dispatcher.with.a.long.name{n}@logistics-company.example",
            ),
        )
    page = new_page(width=390, height=844)
    log_in(page, live_server, owner_user)
    for path, box in [
        ("/fleet/", "#fleet-table .table-wrap"),
        ("/members/", ".table-wrap"),
        ("/credentials/", ".table-wrap"),
    ]:
        page.goto(f"{live_server.url}{path}")
        overflow = page.evaluate(OVERFLOW_JS, box)
        name = path.strip("/")
        page.screenshot(path=str(screenshots / f"phone-{name}.png"), full_page=True)
        assert overflow == {"page": 0, "box": 0}, f"{path} overflows at 390px: {overflow}"
    # The members table and the "Invite someone" card do not touch.
    page.goto(f"{live_server.url}/members/")
    gap = page.evaluate(
        "document.querySelector('[aria-labelledby=invite-heading]').getBoundingClientRect()"
        ".top - document.querySelector('.table-wrap').getBoundingClientRect().bottom"
    )
    assert gap >= 12
    assert not page.problems, "\n".join(page.problems)
