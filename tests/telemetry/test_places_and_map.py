"""Named places, the newest telemetry per vehicle, freshness and the fleet map's JSON."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from fleetportal import maps
from telemetry import freshness, services
from telemetry.models import LatestTelemetry, Place
from telemetry.parse import parse_rest, parse_stream
from tests.factories import ClearanceFactory, VehicleFactory
from vehicles import geo as places

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 21, 10, 5, tzinfo=UTC)
DEPOT = (52.5200, 13.4050)


def state(at: datetime, *, lat: float = DEPOT[0], lon: float = DEPOT[1], battery=0.8) -> dict:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "vin": "X",
        "charging": {"battery_level": {"data": battery, "timestamp": stamp}},
        "diagnostics": {
            "odometer": {"data": {"value": 1000.0, "unit": "kilometers"}, "timestamp": stamp}
        },
        "vehicle_location": {
            "coordinates": {"data": {"latitude": lat, "longitude": lon}, "timestamp": stamp}
        },
    }


def approved(organization, **vehicle):
    return ClearanceFactory(
        status="approved",
        **{f"vehicle__{k}": v for k, v in vehicle.items()},
        vehicle__organization=organization,
    ).vehicle


@pytest.fixture
def depot(organization):
    return Place.objects.create(
        organization=organization,
        name="Depot North",
        latitude=DEPOT[0],
        longitude=DEPOT[1],
        radius_m=300,
    )


# --- places: the rule in Python and in SQL -----------------------------------------------------


def test_place_at_picks_the_nearest_circle_containing_the_point():
    a = Place(name="A", latitude=52.52, longitude=13.405, radius_m=500)
    b = Place(name="B", latitude=52.522, longitude=13.405, radius_m=500)
    assert places.place_at(52.5201, 13.405, [a, b]) is a
    assert places.place_at(52.5219, 13.405, [a, b]) is b
    assert places.place_at(52.60, 13.405, [a, b]) is None
    assert places.place_at(None, None, [a]) is None
    # 300 m east at Berlin's latitude is inside a 310 m circle and outside a 290 m one.
    east = 13.405 + 300 / (places.METRES_PER_DEGREE * 0.6088)
    assert places.place_at(
        52.52, east, [Place(name="C", latitude=52.52, longitude=13.405, radius_m=310)]
    )
    assert not places.place_at(
        52.52, east, [Place(name="C", latitude=52.52, longitude=13.405, radius_m=290)]
    )


def test_the_sql_filter_agrees_with_python(organization, depot):
    inside = approved(organization, nickname="In")
    edge = approved(organization, nickname="Edge")
    outside = approved(organization, nickname="Out")
    for vehicle, (lat, lon) in (
        (inside, DEPOT),
        (edge, (DEPOT[0] + 250 / places.METRES_PER_DEGREE, DEPOT[1])),
        (outside, (DEPOT[0] + 350 / places.METRES_PER_DEGREE, DEPOT[1])),
    ):
        services.record_snapshot(vehicle, parse_rest(state(NOW, lat=lat, lon=lon)), source="pull")
    found = set(
        LatestTelemetry.objects.filter(places.inside_q(depot)).values_list(
            "vehicle__nickname", flat=True
        )
    )
    assert found == {"In", "Edge"}
    for row in LatestTelemetry.objects.all():
        in_python = places.place_at(row.latitude, row.longitude, [depot]) is not None
        assert in_python == (row.vehicle.nickname in found)


# --- places: pages --------------------------------------------------------------------------------


def test_a_manager_adds_a_place_by_typing_its_centre_and_radius(manager_client, organization):
    response = manager_client.post(
        reverse("telemetry:places"),
        {"name": "  Depot   North ", "latitude": "52.52", "longitude": "13.405", "radius_m": "300"},
    )
    assert response.status_code == 302
    place = Place.objects.get(organization=organization)
    assert (place.name, place.latitude, place.longitude, place.radius_m) == (
        "Depot North",
        52.52,
        13.405,
        300,
    )
    html = manager_client.get(reverse("telemetry:places")).content.decode()
    assert "Depot North" in html and "300 m" in html and 'data-draw="1"' in html


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("latitude", "91", "A latitude lies between -90 and 90."),
        ("longitude", "east", "Type the longitude as a decimal number, e.g. 13.4050."),
        ("radius_m", "5", "A place is at least 20 m across its radius."),
        ("radius_m", "90000", "A place&#x27;s radius is at most 50 km."),
        ("name", " ", "This field is required."),
    ],
)
def test_bad_place_input_is_refused_in_words_and_nothing_is_saved(
    manager_client, organization, field, value, words
):
    data = {"name": "Depot", "latitude": "52.52", "longitude": "13.405", "radius_m": "300"}
    data[field] = value
    response = manager_client.post(reverse("telemetry:places"), data)
    assert response.status_code == 400
    assert words in response.content.decode()
    assert not Place.objects.exists()


def test_place_names_are_unique_per_organization(manager_client, organization, other_organization):
    Place.objects.create(
        organization=other_organization, name="Depot", latitude=1, longitude=1, radius_m=100
    )
    data = {"name": "Depot", "latitude": "52.52", "longitude": "13.405", "radius_m": "300"}
    assert manager_client.post(reverse("telemetry:places"), data).status_code == 302
    response = manager_client.post(reverse("telemetry:places"), {**data, "name": "depot"})
    assert response.status_code == 400
    assert "Your organization already has a place called “depot”." in response.content.decode()
    assert Place.objects.filter(organization=organization).count() == 1


def test_viewers_read_places_but_cannot_change_them(
    viewer_client, manager_client, depot, other_organization
):
    html = viewer_client.get(reverse("telemetry:places")).content.decode()
    assert "Depot North" in html and "Save place" not in html and "Delete" not in html
    data = {"name": "X", "latitude": "1", "longitude": "1", "radius_m": "100"}
    assert viewer_client.post(reverse("telemetry:places"), data).status_code == 403
    delete = reverse("telemetry:place_delete", args=[depot.public_id])
    assert viewer_client.post(delete).status_code == 403
    foreign = Place.objects.create(
        organization=other_organization, name="Theirs", latitude=1, longitude=1, radius_m=100
    )
    assert (
        manager_client.post(reverse("telemetry:place_delete", args=[foreign.public_id])).status_code
        == 404
    )
    assert manager_client.post(delete).status_code == 302
    assert list(Place.objects.values_list("name", flat=True)) == ["Theirs"]


@time_machine.travel(NOW, tick=False)
def test_the_vehicle_panel_says_at_the_place(viewer_client, organization, depot):
    vehicle = approved(organization, nickname="Van")
    services.record_snapshot(vehicle, parse_rest(state(NOW)), source="pull")
    html = viewer_client.get(reverse("telemetry:panel", args=[vehicle.public_id])).content.decode()
    assert '<span class="vehicle-place">at Depot North</span>' in html
    assert "&quot;name&quot;: &quot;Depot North&quot;" in html  # drawn on the track map


# --- the newest telemetry per vehicle ---------------------------------------------------------


def test_latest_telemetry_merges_partial_messages_and_ignores_older_data(organization):
    vehicle = approved(organization)
    services.record_snapshot(vehicle, parse_rest(state(NOW, battery=0.5)), source="pull")
    # A stream message with the position only, newer: the battery level stays.
    stamp = (NOW + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    message = {
        "version": 2,
        "message_id": "m-1",
        "vin": vehicle.vin,
        "data": {
            "vehicle_location": {
                "coordinates": [{"data": {"latitude": 48.1, "longitude": 11.5}, "timestamp": stamp}]
            }
        },
    }
    services.record_snapshot(vehicle, parse_stream(message), source="stream")
    # Older data arriving late changes nothing.
    services.record_snapshot(
        vehicle, parse_rest(state(NOW - timedelta(hours=1), lat=1, battery=0.9)), source="pull"
    )
    latest = LatestTelemetry.objects.get(vehicle=vehicle)
    assert (latest.latitude, latest.longitude) == (48.1, 11.5)
    assert latest.battery_level == 0.5 and latest.energy_level == 0.5
    assert latest.odometer_km == 1000.0
    assert latest.captured_at == NOW + timedelta(minutes=5)
    assert services.rebuild_latest([vehicle.pk]) == 1
    rebuilt = LatestTelemetry.objects.get(vehicle=vehicle)
    assert (rebuilt.latitude, rebuilt.battery_level) == (48.1, 0.5)


# --- freshness --------------------------------------------------------------------------------


def test_freshness_in_words(settings):
    settings.TELEMETRY_STALE_AFTER_SECONDS = 900
    f = freshness.freshness
    assert f(None, NOW).words == "No data yet"
    assert f(NOW - timedelta(minutes=10), NOW).state == "reporting"
    assert f(NOW - timedelta(minutes=40), NOW).words == "Silent for 40 min"
    assert f(NOW - timedelta(hours=3, minutes=5), NOW).words == "Silent for 3 h"
    silent = f(NOW - timedelta(days=2, hours=1), NOW)
    assert (silent.state, silent.words) == ("silent-days", "Silent for 2 days")


# --- the fleet map's JSON -------------------------------------------------------------------------


def _map_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("telemetry:fleet_map_data"))
    assert response.status_code == 200
    return len(queries)


@time_machine.travel(NOW, tick=False)
def test_the_map_json_is_compact_and_its_queries_do_not_grow(viewer_client, organization, depot):
    def add(n: int) -> None:
        for i in range(n):
            vehicle = approved(organization, nickname=f"Van {i}", license_plate=f"B-X {i}")
            services.record_snapshot(vehicle, parse_rest(state(NOW)), source="pull")

    add(3)
    few = _map_queries(viewer_client)
    add(30)
    assert _map_queries(viewer_client) == few
    data = viewer_client.get(reverse("telemetry:fleet_map_data")).json()
    assert data["fields"][:3] == ["id", "label", "plate"]
    assert len(data["vehicles"]) == 33
    row = dict(zip(data["fields"], data["vehicles"][0], strict=True))
    assert row["battery"] == 80 and row["fuel"] is None
    assert row["freshness"] == "reporting" and row["seen"] == "2026-11-21 10:05:00 UTC"
    assert data["places"][row["place"]]["name"] == "Depot North"
    assert data["url"].replace("{id}", row["id"]) == reverse("vehicles:detail", args=[row["id"]])
    # No spaces between tokens: one compact document.
    raw = viewer_client.get(reverse("telemetry:fleet_map_data")).content
    assert b", " not in raw and b": " not in raw


def test_another_organizations_vehicles_never_reach_the_map(viewer_client, other_organization):
    vehicle = approved(other_organization)
    services.record_snapshot(vehicle, parse_rest(state(NOW)), source="pull")
    assert viewer_client.get(reverse("telemetry:fleet_map_data")).json()["vehicles"] == []
    VehicleFactory(organization=other_organization)


# --- tiles ----------------------------------------------------------------------------------------


def test_openstreetmap_is_the_default_and_empty_means_the_plain_grid(monkeypatch):
    monkeypatch.delenv("MAP_TILE_URL", raising=False)
    monkeypatch.delenv("MAP_TILE_ATTRIBUTION", raising=False)
    assert maps.tile_settings() == (maps.OSM_TILE_URL, maps.OSM_ATTRIBUTION)
    assert "OpenStreetMap" in maps.OSM_ATTRIBUTION and "copyright" in maps.OSM_ATTRIBUTION
    monkeypatch.setenv("MAP_TILE_URL", "")
    assert maps.tile_settings() == ("", "")
    monkeypatch.setenv("MAP_TILE_URL", "https://{s}.tiles.example.com/{z}/{x}/{y}.png")
    monkeypatch.setenv("MAP_TILE_ATTRIBUTION", "© Example")
    assert maps.tile_settings() == ("https://{s}.tiles.example.com/{z}/{x}/{y}.png", "© Example")


def _img_src(env: dict[str, str]) -> str:
    code = "from fleetportal import settings_test as s; print(s.SECURE_CSP['img-src'])"
    base = {"PATH": "/usr/bin:/bin", "DJANGO_DEBUG": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_the_csp_allows_the_default_tile_server_only():
    assert "https://tile.openstreetmap.org" in _img_src({})
    assert "openstreetmap" not in _img_src({"MAP_TILE_URL": ""})
