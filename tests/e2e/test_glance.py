"""The fleet at a glance, walked in Chromium on `manage.py demo`'s fleet: the list's telemetry
columns, sorting, filters and remembered columns; the map with OpenStreetMap tiles (answered by
the browser context) and its popups; places; the vehicle page's history ranges and trips."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from fleetportal.maps import OSM_ATTRIBUTION, OSM_TILE_URL
from telemetry.models import Place
from tests.conftest import wait_for
from vehicles.models import Vehicle

pytestmark = [pytest.mark.e2e]
DEMO_PASSWORD = "demo-password-for-the-glance-walk"


@pytest.fixture
def demo(transactional_db, live_server, settings, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", DEMO_PASSWORD)
    settings.SITE_URL = live_server.url
    settings.MAP_TILE_URL, settings.MAP_TILE_ATTRIBUTION = OSM_TILE_URL, OSM_ATTRIBUTION
    call_command("demo", stdout=StringIO())
    return Vehicle.objects.get(nickname="i4 15").organization


def log_in_as_demo(page, live_server) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/fleet/**")


def column_texts(page, key: str) -> list[str]:
    return [t.strip() for t in page.locator(f"td[data-col={key}]").all_inner_texts()]


def settled_column(page, key: str, check, message: str) -> list[str]:
    """The column's texts once the page shows what was asked: the rows are swapped in after the
    URL changes, so reading right after ``wait_for_url`` can still see the previous rows."""

    def ready():
        texts = column_texts(page, key)
        return texts if texts and check(texts) else None

    return wait_for(ready, timeout=15, message=message)


def percent(text: str) -> int | None:
    match = re.search(r"(\d+) %", text)
    return int(match.group(1)) if match else None


def test_the_fleet_at_a_glance_on_the_demo(demo, live_server, new_page, screenshots):
    page = new_page(width=1400, height=1000)
    log_in_as_demo(page, live_server)
    fleet = f"{live_server.url}/fleet/"

    # --- the list: telemetry columns of approved vehicles --------------------------------------
    page.goto(f"{fleet}?status=approved")
    energies = column_texts(page, "energy")
    assert len(energies) >= 20 and all(re.match(r"(Battery|Fuel) \d+ %", e) for e in energies)
    assert all(t.endswith("km") for t in column_texts(page, "odometer"))
    assert any(t.startswith("at Depot ") for t in column_texts(page, "position"))
    assert set(column_texts(page, "freshness")) == {"Reporting"}
    page.screenshot(path=str(screenshots / "glance-fleet.png"), full_page=True)

    # Sorted by battery/fuel, lowest first, by clicking the header.
    page.click("#sort-energy")
    page.wait_for_url(re.compile(r".*sort=energy.*"))

    def known(texts):
        return [v for v in (percent(t) for t in texts) if v is not None]

    levels = known(
        settled_column(
            page, "energy", lambda t: known(t) == sorted(known(t)), "rows sorted by energy"
        )
    )
    assert levels == sorted(levels) and len(levels) >= 20

    # Filters: battery/fuel below X %, silent for more than N hours, inside a place.
    threshold = levels[len(levels) // 2] + 1
    page.goto(f"{fleet}?status=approved")
    page.fill("#filter-energy", str(threshold))
    page.click("text=Apply filters")
    page.wait_for_url(re.compile(rf".*energy_below={threshold}.*"))
    # The filtered page as the server renders it: on the open page, rows on screen keep
    # updating live (the demo's batteries charge and drain) without leaving the filter.
    served = page.request.get(page.url, headers={"HX-Request": "false"}).text()
    below = [
        percent(re.sub(r"<[^>]+>", "", cell))
        for cell in re.findall(r'<td[^>]*data-col="energy"[^>]*>(.*?)</td>', served, re.S)
    ]
    # Shown rounded to whole percent: 66.6 % is below 67 % and shows as "67 %".
    assert below and all(v is not None and v <= threshold for v in below), below
    page.goto(f"{fleet}?silent_hours=1")
    assert "No vehicles match these filters" in page.inner_text("#fleet-table")  # all report
    depot = Place.objects.filter(organization=demo).order_by("name").first()
    page.goto(fleet)
    page.select_option("#filter-place", label=depot.name)
    page.click("text=Apply filters")
    page.wait_for_url(re.compile(r".*place=.*"))
    inside = settled_column(
        page,
        "position",
        lambda t: all(x == f"at {depot.name}" for x in t),
        f"only vehicles at {depot.name}",
    )
    assert inside and all(t == f"at {depot.name}" for t in inside)

    # Columns chosen and remembered.
    page.goto(fleet)
    page.click("summary:has-text('Columns')")
    page.uncheck("input[name=show][value=odometer]")
    page.click("text=Save columns")
    page.wait_for_selector("text=Columns saved")
    assert page.locator("#sort-odometer").count() == 0
    page.goto(fleet)
    assert page.locator("#sort-odometer").count() == 0 and page.locator("#sort-energy").count()

    # --- the map: OpenStreetMap tiles, clusters, popups, places --------------------------------
    page.goto(f"{live_server.url}/telemetry/map/")
    page.wait_for_selector(".fleet-map[data-loaded='1']", timeout=15_000)
    approved = Vehicle.objects.filter(organization=demo, clearance__status="approved").count()
    assert int(page.get_attribute(".fleet-map", "data-vehicles")) == approved
    wait_for(lambda: page.tile_requests, timeout=10, message="a tile request")
    assert all(
        re.fullmatch(r"https://tile\.openstreetmap\.org/\d+/\d+/\d+\.png", u)
        for u in page.tile_requests
    )
    assert "OpenStreetMap" in page.inner_text(".leaflet-control-attribution")
    for _ in range(8):  # open groups until single vehicles show
        if page.locator(".fleet-map path.map-vehicle").count():
            break
        page.locator(".marker-cluster").first.click()
        page.wait_for_timeout(600)
    page.locator(".fleet-map path.map-vehicle").first.click(force=True)
    page.wait_for_selector(".leaflet-popup .map-popup", timeout=5_000)
    popup = page.inner_text(".leaflet-popup .map-popup")
    assert "Plate " in popup and "Data access: Approved" in popup
    assert re.search(r"(Battery|Fuel) \d+ %", popup) and "last report 20" in popup
    assert page.locator(".leaflet-popup .map-popup a").get_attribute("href").startswith("/fleet/")
    page.screenshot(path=str(screenshots / "glance-map.png"), full_page=True)

    # --- places ------------------------------------------------------------------------------
    page.goto(f"{live_server.url}/telemetry/places/")
    page.wait_for_selector(".places-map.leaflet-container")
    assert (
        page.locator(".places-table tbody tr").count()
        == Place.objects.filter(organization=demo).count()
    )
    assert page.locator(".places-map path.map-place").count() >= 1

    # --- the vehicle page: history ranges and trips ----------------------------------------------
    van = Vehicle.objects.get(nickname="i4 15")
    page.goto(f"{live_server.url}{reverse('vehicles:detail', args=[van.public_id])}")
    page.wait_for_selector("#telemetry-live")
    assert "History: last 24 hours" in page.inner_text("#telemetry-live")
    page.click("#telemetry-live .history-ranges >> text=7 days")
    page.wait_for_selector("text=History: last 7 days")
    panel = page.inner_text("#telemetry-live")
    assert "History is kept for 90 days" in panel
    assert page.locator("#telemetry-live .trips-table tbody tr").count() >= 5
    assert re.search(r"\d+ trips?, [\d.]+ km in this range", panel)
    page.wait_for_selector("#telemetry-live .telemetry-map.leaflet-container")
    assert page.locator("#telemetry-live path.map-trip").count() >= 1
    page.screenshot(path=str(screenshots / "glance-vehicle.png"), full_page=True)
    assert page.problems == []
