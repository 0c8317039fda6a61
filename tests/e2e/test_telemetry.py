"""The telemetry panel and the fleet map in a real Chromium (Playwright, /usr/bin/chromium).

Screenshots go to var/screenshots/. Every page is checked for CSP violations and script errors.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from simulator.vehicle_data import vehicle_state
from telemetry import services
from telemetry.parse import parse_rest
from tests.conftest import logged_in_client, wait_for
from tests.e2e.conftest import TILE_PNG, TILE_URL_PATTERN
from tests.factories import ClearanceFactory
from tests.utils import require

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

    def __init__(self, browser, live_server, user, organization, *, javascript: bool = True):
        client = logged_in_client(user, organization)
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 1000}, java_script_enabled=javascript
        )
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
        self.tile_requests: list[str] = []
        self.context.route(TILE_URL_PATTERN, self._serve_tile)
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda msg: self.problems.append(msg.text) if msg.type == "error" else None,
        )
        self.page.on("pageerror", lambda exc: self.problems.append(str(exc)))
        self.base = live_server.url

    def _serve_tile(self, route, request) -> None:
        self.tile_requests.append(request.url)
        route.fulfill(status=200, content_type="image/png", body=TILE_PNG)

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
        # The answer to the Refresh pressed above, with when it came.
        assert page.inner_text(".telemetry-status").startswith("Refreshed just now:")
        page.wait_for_selector(".telemetry-map.leaflet-container", timeout=10_000)
        assert page.locator(".telemetry-field").count() >= 8
        page.screenshot(path=str(screenshots / "telemetry_refreshed.png"), full_page=True)
        assert p.problems == []
    finally:
        p.context.close()
        clock.reset()


def test_fleet_map_clusters_vehicles(page, transactional_db, organization, screenshots):
    vins = [f"WVWZZZ1KZ0000{n:04d}" for n in range(12)]
    vehicles = [
        ClearanceFactory(
            vehicle__organization=organization, vehicle__vin=vin, status="approved"
        ).vehicle
        for vin in vins
    ]
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


def test_fleet_map_without_tiles_labels_vehicles_and_uses_portal_dates(
    page, transactional_db, organization, screenshots, settings
):
    settings.MAP_TILE_URL = ""
    van = ClearanceFactory(
        vehicle__organization=organization,
        vehicle__vin="2HM00000000000007",
        vehicle__nickname="Blue van",
        status="approved",
    ).vehicle
    old = ClearanceFactory(
        vehicle__organization=organization,
        vehicle__vin="2HM00000000000008",
        vehicle__nickname="Sold van",
        status="revoked",
    ).vehicle
    drive(van, minutes=0)
    drive(old, minutes=0)
    p = page.goto("/telemetry/map/")
    p.wait_for_selector(".fleet-map.leaflet-container", timeout=10_000)
    # A label beside the dot, and the vehicle in the table with its coordinates.
    wait_for(lambda: p.locator(".map-label").count() == 1, timeout=10, message="marker label")
    assert p.inner_text(".map-label") == "Blue van"
    assert p.locator(".leaflet-control-scale").count() == 1
    rows = p.locator("table.fleet-positions tbody tr")
    assert rows.count() == 1 and "Blue van" in rows.first.inner_text()
    assert "Sold van" not in p.content()  # revoked: not shown by default
    body = p.inner_text("main")
    assert "MAP_TILE_URL" not in body and "plain grid" in body
    p.click(".fleet-map path.map-vehicle")
    p.wait_for_selector(".leaflet-popup .map-popup", timeout=5_000)
    popup = p.inner_text(".leaflet-popup .map-popup")
    assert "Data access: Approved" in popup
    assert re.search(r"last report \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", popup), popup
    assert "AM" not in popup and "PM" not in popup and "/" not in popup
    p.screenshot(path=str(screenshots / "telemetry_fleet_map_plain.png"), full_page=True)
    # Every vehicle on request, its status in the popup and the table.
    p = page.goto("/telemetry/map/?show=all")
    wait_for(lambda: p.locator(".map-label").count() == 2, timeout=10, message="both labels")
    assert "Revoked" in p.inner_text("table.fleet-positions")
    assert page.problems == []


def test_pending_vehicle_offers_no_refresh(page, transactional_db, organization):
    vehicle = ClearanceFactory(
        vehicle__organization=organization, vehicle__vin="2HM00000000000002", status="pending"
    ).vehicle
    p = page.goto(reverse("vehicles:detail", args=[vehicle.public_id]))
    p.wait_for_selector("#telemetry-live", timeout=10_000)
    assert p.locator("#telemetry-live form[method=post] button").count() == 0  # no Refresh
    assert "once the clearance is approved" in p.inner_text("#telemetry-live")
    assert page.problems == []


def test_without_javascript_the_vehicle_page_links_to_the_panel(
    browser, live_server, viewer_user, organization, transactional_db
):
    vehicle = ClearanceFactory(
        vehicle__organization=organization, vehicle__vin="2HM00000000000009", status="approved"
    ).vehicle
    drive(vehicle, minutes=10)
    p = Page(browser, live_server, viewer_user, organization, javascript=False)
    try:
        page = p.goto(reverse("vehicles:detail", args=[vehicle.public_id]))
        # Playwright turns off script execution, not the parser's scripting flag, so Chromium
        # keeps <noscript> as text here: read the link from it and follow it.
        noscript = re.search(r"<noscript>(.*?)</noscript>", page.content(), re.S).group(1)
        assert "Open the telemetry page" in noscript
        href = re.search(r'href="([^"]+)"', noscript).group(1)
        page = p.goto(href)
        page.wait_for_selector("#telemetry-live", timeout=10_000)
        assert page.url.endswith(reverse("telemetry:panel", args=[vehicle.public_id]))
        assert page.locator(".telemetry-field").count() >= 8
        assert "Loading telemetry" not in page.content()
    finally:
        p.context.close()


def test_fleet_map_shows_openstreetmap_tiles_popups_and_places(
    page, transactional_db, organization, screenshots, settings
):
    from fleetportal.maps import OSM_ATTRIBUTION, OSM_TILE_URL
    from telemetry.models import LatestTelemetry, Place

    settings.MAP_TILE_URL, settings.MAP_TILE_ATTRIBUTION = OSM_TILE_URL, OSM_ATTRIBUTION
    van = ClearanceFactory(
        vehicle__organization=organization,
        vehicle__vin="2HM00000000000007",
        vehicle__nickname="Blue van",
        vehicle__license_plate="B-BV 7",
        status="approved",
    ).vehicle
    drive(van, minutes=0)
    latest = LatestTelemetry.objects.get(vehicle=van)
    Place.objects.create(
        organization=organization,
        name="Depot North",
        latitude=latest.latitude,
        longitude=latest.longitude,
        radius_m=400,
    )
    p = page.goto("/telemetry/map/")
    p.wait_for_selector(".fleet-map[data-loaded='1']", timeout=10_000)
    wait_for(lambda: page.tile_requests, timeout=10, message="a tile request")
    assert all(
        re.fullmatch(r"https://tile\.openstreetmap\.org/\d+/\d+/\d+\.png", url)
        for url in page.tile_requests
    ), page.tile_requests
    assert "OpenStreetMap" in p.inner_text(".leaflet-control-attribution")
    assert p.locator(".map-label").count() == 0  # tiles: no permanent labels
    wait_for(
        lambda: p.locator(".fleet-map path.map-place").count() == 1,
        timeout=10,
        message="the place drawn on the fleet map",
    )
    p.locator(".fleet-map path.map-vehicle").first.click(force=True)
    p.wait_for_selector(".leaflet-popup .map-popup", timeout=5_000)
    popup = p.inner_text(".leaflet-popup .map-popup")
    for words in ("Blue van", "Plate B-BV 7", "Data access: Approved", "At Depot North"):
        assert words in popup, popup
    assert re.search(r"(Battery|Fuel) \d+ %", popup) and "Reporting · last report" in popup
    assert "fresh-reporting" in p.get_attribute(".fleet-map path.map-vehicle", "class")
    href = p.get_attribute(".leaflet-popup .map-popup a", "href")
    assert href.endswith(reverse("vehicles:detail", args=[van.public_id]))
    assert "at Depot North" in p.inner_text("table.fleet-positions")
    p.screenshot(path=str(screenshots / "telemetry_fleet_map_osm.png"), full_page=True)
    assert page.problems == []


def test_a_place_is_drawn_on_the_map_and_saved(
    browser, live_server, transactional_db, organization, manager_user, screenshots, settings
):
    from telemetry.models import Place

    settings.MAP_TILE_URL = ""
    p = Page(browser, live_server, manager_user, organization)
    try:
        page = p.goto("/telemetry/places/")
        page.wait_for_selector(".places-map.leaflet-container", timeout=10_000)
        for _ in range(7):  # from Europe down to a city's streets
            page.click(".places-map .leaflet-control-zoom-in")
            page.wait_for_timeout(300)
        box = page.locator(".places-map").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.click(box["x"] + box["width"] / 2 + 40, box["y"] + box["height"] / 2)
        assert page.input_value("#id_latitude") and page.input_value("#id_longitude")
        radius = int(page.input_value("#id_radius_m"))
        assert radius >= 20
        assert page.locator(".places-map path.map-place-new").count() == 1
        page.fill("#id_name", "Drawn depot")
        page.click("text=Save place")
        page.wait_for_selector("text=Place “Drawn depot” saved.")
        place = Place.objects.get(organization=organization)
        assert place.name == "Drawn depot" and place.radius_m == radius
        # The saved place is drawn once the page's map has loaded again after the save.
        wait_for(
            lambda: page.locator(".places-map path.map-place").count() == 1,
            timeout=10,
            message="the saved place drawn on the map",
        )
        page.screenshot(path=str(screenshots / "telemetry_places.png"), full_page=True)
        assert p.problems == []
    finally:
        p.context.close()
