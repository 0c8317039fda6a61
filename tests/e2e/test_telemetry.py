"""The telemetry panel and the fleet map in a real Chromium (Playwright, /usr/bin/chromium).

Screenshots go to var/screenshots/. Every page is checked for CSP violations and script errors.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from simulator.vehicle_data import vehicle_state
from tests.conftest import logged_in_client, wait_for
from tests.factories import ClearanceFactory, VehicleFactory
from tests.utils import require
from vehicles.telemetry import services
from vehicles.telemetry.parse import parse_rest

# Playwright's sync API runs an event loop in this thread; the ORM calls here are plain sync code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    require(shutil.which(CHROMIUM) or os.path.exists(CHROMIUM), f"Chromium is not at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover
        require(False, "playwright is not installed")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def screenshots(settings):
    folder = settings.VAR_DIR / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Page:
    """A logged-in page that records console errors (CSP violations show up there)."""

    def __init__(self, browser, live_server, user, organization):
        client = logged_in_client(user, organization)
        self.context = browser.new_context(viewport={"width": 1280, "height": 1000})
        self.context.add_cookies(
            [
                {
                    "name": "sessionid",
                    "value": client.cookies["sessionid"].value,
                    "url": live_server.url,
                }
            ]
        )
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda msg: self.problems.append(msg.text) if msg.type == "error" else None,
        )
        self.page.on("pageerror", lambda exc: self.problems.append(str(exc)))
        self.base = live_server.url

    def goto(self, path: str):
        self.page.goto(self.base + path)
        return self.page


@pytest.fixture
def page(browser, live_server, viewer_user, organization):
    p = Page(browser, live_server, viewer_user, organization)
    yield p
    p.context.close()


def drive(vehicle, *, minutes: int = 60, step: int = 5) -> None:
    """Store what the simulator's vehicle reported over the last hour, one snapshot per step."""
    now = datetime.now(UTC)
    for ago in range(minutes, -1, -step):
        state = vehicle_state(vehicle.vin, now - timedelta(minutes=ago))
        services.record_snapshot(vehicle, parse_rest(state), source="pull")


def test_vehicle_panel_shows_values_charts_and_the_track(
    page, transactional_db, organization, screenshots
):
    vehicle = ClearanceFactory(
        vehicle__organization=organization, vehicle__vin="2HM00000000000004", status="approved"
    ).vehicle
    drive(vehicle)
    p = page.goto(f"/telemetry/vehicles/{vehicle.public_id}/")  # the standalone page
    p.wait_for_selector(".telemetry-map.leaflet-container", timeout=10_000)
    # Attached, not visible: a vehicle parked for the whole hour draws a zero-length track.
    p.wait_for_selector(".telemetry-map path.map-track", state="attached", timeout=10_000)
    assert p.locator(".telemetry-field").count() >= 8
    assert p.locator(".telemetry-field .telemetry-time").first.inner_text().startswith("updated")
    assert p.locator(".telemetry-chart svg path").count() >= 3
    assert p.locator(".telemetry-map path.map-point-last").count() == 1
    assert p.locator(".telemetry-doors tbody tr").count() == 4
    p.screenshot(path=str(screenshots / "telemetry_panel.png"), full_page=True)
    assert page.problems == []


def test_refresh_shows_the_result_live(
    transactional_db, browser, live_server, manager_user, organization, celery_worker, screenshots
):
    from simulator import clock
    from simulator import services as sim
    from tests.factories import CredentialFactory

    clock.reset()
    app, secrets = sim.create_app("E2E telemetry", approval_delay_seconds=1)
    credential = CredentialFactory(
        organization=organization,
        environment="simulator",
        client_id=secrets.client_id,
        client_secret=secrets.client_secret,
        app_id=secrets.app_id,
    )
    vehicle = ClearanceFactory(
        vehicle__organization=organization,
        vehicle__vin="2HM00000000000005",
        credential=credential,
        status="approved",
    ).vehicle
    sim.request_clearances(app, [{"vin": vehicle.vin, "brand": "sandbox"}])
    clock.advance(timedelta(seconds=10))
    p = Page(browser, live_server, manager_user, organization)
    try:
        # The dashboard's vehicle page loads the panel with htmx.
        page = p.goto(reverse("vehicles:detail", args=[vehicle.public_id]))
        page.wait_for_selector("#telemetry-live", timeout=10_000)
        assert "No telemetry yet" in page.inner_text("#telemetry-live")
        page.click("#telemetry-live button[type=submit]")
        page.wait_for_selector(".telemetry-status-ok", timeout=30_000)  # the panel polls by itself
        assert "Refreshed:" in page.inner_text(".telemetry-status")
        page.wait_for_selector(".telemetry-map.leaflet-container", timeout=10_000)
        assert page.locator(".telemetry-field").count() >= 8
        page.screenshot(path=str(screenshots / "telemetry_refreshed.png"), full_page=True)
        assert p.problems == []
    finally:
        p.context.close()
        clock.reset()


def test_fleet_map_clusters_vehicles(page, transactional_db, organization, screenshots):
    vins = [f"WVWZZZ1KZ0000{n:04d}" for n in range(12)]
    vehicles = [VehicleFactory(organization=organization, vin=vin) for vin in vins]
    for vehicle in vehicles:
        drive(vehicle, minutes=0)
    p = page.goto("/telemetry/map/")
    p.wait_for_selector(".fleet-map.leaflet-container", timeout=10_000)
    wait_for(lambda: p.locator(".marker-cluster").count() > 0, timeout=10, message="clusters")
    assert p.locator("table.fleet-positions tbody tr").count() == len(vehicles)
    p.screenshot(path=str(screenshots / "telemetry_fleet_map.png"), full_page=True)
    assert page.problems == []


def test_the_map_keeps_its_zoom_when_the_panel_refreshes(page, transactional_db, organization):
    vehicle = ClearanceFactory(
        vehicle__organization=organization, vehicle__vin="2HM00000000000006", status="approved"
    ).vehicle
    drive(vehicle, minutes=30)
    p = page.goto(reverse("vehicles:detail", args=[vehicle.public_id]))
    p.wait_for_selector("#telemetry-live .telemetry-map.leaflet-container", timeout=10_000)
    p.click(".leaflet-control-zoom-out")
    p.wait_for_timeout(600)
    zoom = p.evaluate("document.querySelector('.telemetry-map').leafletMap.getZoom()")
    # Re-render the panel the way its poll does, and wait for the new map.
    p.evaluate("window.oldMap = document.querySelector('.telemetry-map')")
    p.evaluate(
        "htmx.ajax('GET', document.querySelector('#telemetry-live').getAttribute('hx-get'),"
        " {target: '#telemetry-live', swap: 'outerHTML'})"
    )
    new_map = (
        "(() => { const m = document.querySelector('.telemetry-map');"
        " return !!(m && m !== window.oldMap && m.leafletMap); })()"
    )
    # Polled from Python: wait_for_function would need eval, which the CSP forbids.
    wait_for(lambda: p.evaluate(new_map), timeout=10, message="the re-rendered map")
    again = p.evaluate("document.querySelector('.telemetry-map').leafletMap.getZoom()")
    assert again == zoom
    assert page.problems == []
