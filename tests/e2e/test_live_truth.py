"""Issue 12 in a real Chromium against live_server: the pages never contradict themselves after a
live change, and the same concept follows one rule everywhere. One test per finding (some walk
two); status changes are written to the database as the worker would, and the pages' own polls
bring them to the screen."""

from __future__ import annotations

import pytest
from django.utils import timezone

from clearance.models import Clearance
from organizations.models import Role
from tests.e2e.conftest import log_in
from tests.factories import (
    ClearanceFactory,
    CredentialFactory,
    MembershipFactory,
    OrganizationFactory,
    VehicleFactory,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
LIVE_MS = 20_000


def approve(clearance) -> None:
    now = timezone.now()
    Clearance.objects.filter(pk=clearance.pk).update(
        status="approved", requested_at=now, status_known_at=now, status_changed_at=now
    )


def test_1_2_the_vehicle_page_follows_a_live_change_everywhere_and_defleet_stays_modal(
    transactional_db, new_page, live_server, manager_user, organization, screenshots
):
    from playwright.sync_api import expect

    clearance = ClearanceFactory(
        vehicle__organization=organization, status="queued", requested_at=None
    )
    page = new_page()
    log_in(page, live_server, manager_user)
    page.goto(f"{live_server.url}/fleet/{clearance.vehicle.public_id}/")
    expect(page.locator("#requested-at")).to_have_text("not yet")
    expect(page.locator("#defleet-open")).to_have_count(0)  # queued: nothing to defleet
    approve(clearance)
    expect(page.locator("#vehicle-status-badge")).to_have_text("Approved", timeout=LIVE_MS)
    # The Vehicle card changed in the same answer (finding 1).
    expect(page.locator("#requested-at")).not_to_have_text("not yet")
    expect(page.locator("#last-heard")).not_to_contain_text("nothing yet")
    expect(page.locator("#telemetry-live")).not_to_contain_text("it is queued now")
    # Defleet now opens a modal dialog worded for Approved (finding 2).
    page.click("#defleet-open")
    dialog = page.locator("#defleet-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Revoking")
    assert page.evaluate("document.getElementById('defleet-dialog').matches(':modal')")
    assert page.url.endswith(f"/fleet/{clearance.vehicle.public_id}/")  # no reload
    page.screenshot(path=str(screenshots / "live-defleet-after-change.png"))
    page.keyboard.press("Escape")
    expect(dialog).not_to_be_visible()
    assert not page.problems, "\n".join(page.problems)


def test_3_4_bare_tags_and_tag_search_as_displayed(
    transactional_db, new_page, live_server, manager_user, organization
):
    from playwright.sync_api import expect

    vehicle = ClearanceFactory(vehicle__organization=organization, status="approved").vehicle
    VehicleFactory(organization=organization, nickname="Elsewhere", tags={"depot": "hamburg"})
    page = new_page()
    log_in(page, live_server, manager_user)
    page.goto(f"{live_server.url}/fleet/{vehicle.public_id}/edit/")
    page.fill("#id_tags", "vans, depot=munich")
    page.fill("#id_odometer_km", "87 351")
    page.click("main button[type=submit]")
    expect(page.locator("#vehicle-tags")).to_have_text("vans, depot=munich")
    expect(page.locator("#control-odometer")).to_contain_text("87,351 km")  # finding 8
    page.click("#vehicle-tags a:has-text('depot=munich')")  # the tag filter
    expect(page.locator("#fleet-table tbody tr")).to_have_count(1)
    page.goto(f"{live_server.url}/fleet/")
    page.fill("#filter-q", "depot=munich")  # as it is displayed
    expect(page.locator("#fleet-table tbody tr")).to_have_count(1, timeout=LIVE_MS)
    expect(page.locator(f"#row-{vehicle.public_id}")).to_be_visible()


def test_6_10_one_poll_keeps_rows_counters_and_summary_together(
    transactional_db, new_page, live_server, manager_user, organization
):
    from playwright.sync_api import expect

    clearances = [
        ClearanceFactory(vehicle__organization=organization, status="pending") for _ in range(12)
    ]
    page = new_page()
    log_in(page, live_server, manager_user)
    page.goto(f"{live_server.url}/fleet/?status=pending")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    expect(page.locator("#fleet-summary")).to_contain_text("12 of 12")
    for clearance in clearances[:3]:
        approve(clearance)
    expect(page.locator("#counter-pending strong")).to_have_text("9", timeout=LIVE_MS)
    expect(page.locator("#fleet-summary")).to_contain_text("9 of 12")  # finding 6
    row = page.locator(f"#row-{clearances[0].vehicle.public_id} .status")
    expect(row).to_have_text("Approved")
    page.wait_for_timeout(3000)
    polls = [url for url in requests if "/fleet/live/" in url]
    assert polls and not [url for url in requests if "/row/" in url or "/counters/" in url]
    assert len(polls) <= 6  # one request per interval for the page, not one per row


def test_11_the_first_vehicle_is_on_the_first_screen_of_a_phone(
    transactional_db, new_page, live_server, manager_user, organization, screenshots
):
    for status in ("pending", "approved", "rejected", "revoked", "queued", "error"):
        ClearanceFactory(vehicle__organization=organization, status=status)
    page = new_page(width=390, height=844)
    log_in(page, live_server, manager_user)
    first = page.locator("#fleet-table tbody tr").first
    first.wait_for()
    box = first.bounding_box()
    page.screenshot(path=str(screenshots / "fleet-phone-first-screen.png"))
    assert box is not None and box["y"] + box["height"] <= 844


def test_7_a_fresh_login_opens_the_organization_last_used(
    transactional_db, new_page, live_server, manager_user, organization
):
    from playwright.sync_api import expect

    second = OrganizationFactory(name="Zeta Fleet")
    MembershipFactory(user=manager_user, organization=second, role=Role.OWNER)
    page = new_page()
    log_in(page, live_server, manager_user)
    page.select_option("#org-select", str(second.public_id))
    expect(page.locator("#org-select")).to_have_value(str(second.public_id))
    page.context.clear_cookies()
    fresh = new_page()
    log_in(fresh, live_server, manager_user)
    expect(fresh.locator("#org-select")).to_have_value(str(second.public_id))


def test_5_9_the_import_preview_for_humans(
    transactional_db, new_page, live_server, manager_user, organization, celery_worker
):
    from playwright.sync_api import expect

    CredentialFactory(organization=organization, name="Simulator", environment="simulator")
    CredentialFactory(organization=organization, name="Main app", environment="production")
    page = new_page()
    log_in(page, live_server, manager_user)
    page.goto(f"{live_server.url}/imports/")
    options = page.locator("#id_credential option")
    expect(options.first).to_have_text("Choose an HM application…")  # never "None" preselected
    expect(page.locator("#id_credential")).not_to_contain_text("Simulator (Simulator")
    rows = "".join(f"WVWZZZ1KZ{i:08d},volkswagen,=x\n" for i in range(40))
    rows += "".join(f"WVWZZZ1KZ{100 + i:08d},Trabant,\n" for i in range(3))
    rows += "1HMD3W5DA8C7Y5DNA,sandbox,\n"
    page.set_input_files(
        "#id_file",
        files=[
            {
                "name": "f.csv",
                "mimeType": "text/csv",
                "buffer": ("vin,brand,tags\n" + rows).encode(),
            }
        ],
    )
    page.select_option("#id_credential", "none")
    page.click("button:has-text('Upload and check')")
    bar = page.locator("#preview-bar")
    expect(bar).to_be_visible(timeout=LIVE_MS)
    button = bar.locator("button:has-text('Import 1 new vehicle')")
    box = button.bounding_box()
    assert box is not None and box["y"] < 1000  # on the first screen
    issues = page.locator("#job-status")
    expect(issues).to_contain_text("40 rows:")
    expect(issues).to_contain_text("3 rows:")
    assert page.content().count("Volvo Cars") == 1
    assert "check digit" not in page.content()  # European VINs, a sandbox VIN
