"""Trips derived from snapshots; the fleet-wide distance per vehicle and its CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from simulator.vehicle_data import moment, profile, vehicle_state
from telemetry import services, trips
from telemetry.models import Place, TelemetrySnapshot
from telemetry.parse import parse_rest
from tests.factories import ClearanceFactory

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def row(minute, ignition, speed=None, odometer=None, lat=None, lon=None):
    return (T0 + timedelta(minutes=minute), ignition, speed, odometer, lat, lon)


def test_a_trip_runs_from_ignition_on_to_off_with_odometer_distance():
    depot = Place(name="Depot North", latitude=52.52, longitude=13.40, radius_m=300)
    rows = [
        row(0, "lock", 0, 1000.0, 52.52, 13.40),
        row(10, "on", 40, 1004.0, 52.55, 13.45),
        row(20, "on", 50, 1012.5, 52.60, 13.50),
        row(30, "off", 0, 1015.0, 52.61, 13.51),
        row(40, "lock", 0, 1015.0, 52.61, 13.51),
    ]
    (trip,) = trips.derive(rows, [depot])
    assert trip.started_at == T0 and trip.ended_at == T0 + timedelta(minutes=30)
    assert trip.start_place == "Depot North" and trip.end_place == ""
    assert trip.end == (52.61, 13.51)
    assert trip.distance_km == 15.0 and trip.distance_source == "odometer"
    assert trip.duration_words == "30 min"


def test_without_odometer_or_ignition_positions_make_the_trip():
    rows = [
        row(0, "", 0, None, 52.50, 13.40),
        row(5, "", None, None, 52.51, 13.40),  # 1.1 km further: moving
        row(10, "", None, None, 52.52, 13.40),
        row(15, "", None, None, 52.52, 13.40),  # stood still: the trip ends
        row(20, "", None, None, 52.52, 13.40),
    ]
    (trip,) = trips.derive(rows)
    assert trip.distance_source == "positions"
    assert trip.distance_km == pytest.approx(2.23, abs=0.02)
    assert trip.ended_at == T0 + timedelta(minutes=15)


def test_a_trip_still_moving_is_under_way_and_tiny_moves_are_no_trips():
    rows = [
        row(0, "off", 0, 100.0),
        row(1, "on", 5, 100.05),  # moved across the car park
        row(2, "off", 0, 100.1),
        row(3, "on", 30, 100.1),
        row(4, "on", 30, 103.0),
    ]
    (trip,) = trips.derive(rows)
    assert trip.ended_at is None and trip.duration_words == "under way"
    assert trip.distance_km == pytest.approx(2.9)  # from where it last stood (100.1 km)


@pytest.fixture
def simulated(organization):
    return ClearanceFactory(
        vehicle__organization=organization, vehicle__vin="WBAFPDEMO00000015", status="approved"
    ).vehicle


def drive(vehicle, hours: int, every: timedelta = timedelta(minutes=5)) -> None:
    at = NOW - timedelta(hours=hours)
    while at <= NOW:
        services.record_snapshot(vehicle, parse_rest(vehicle_state(vehicle.vin, at)), source="pull")
        at += every


@time_machine.travel(NOW, tick=False)
def test_the_simulators_story_gives_its_trips(simulated):
    drive(simulated, hours=8)
    found = trips.trips_for(simulated, NOW - timedelta(hours=8), NOW)
    p = profile(simulated.vin)
    # The simulator drives every other cycle: about one trip per two cycles.
    expected = 8 * 3600 / (2 * p.cycle_seconds)
    assert abs(len(found) - expected) <= 2, (len(found), expected)
    done = [t for t in found if t.ended_at]
    assert done and all(t.distance_source == "odometer" and t.distance_km > 1 for t in done)
    # Each finished trip covers one drive: its distance is the speed times the driving time.
    for t in done:
        assert not moment(p, t.ended_at).driving
        assert t.distance_km == pytest.approx(p.drive_seconds * p.speed_kmh / 3600, rel=0.35), t


@time_machine.travel(NOW, tick=False)
def test_the_vehicle_page_lists_and_draws_the_trips(viewer_client, simulated):
    drive(simulated, hours=6)
    html = viewer_client.get(
        reverse("telemetry:panel", args=[simulated.public_id]), {"range": "24h"}
    ).content.decode()
    assert 'class="table trips-table"' in html and " km in this range" in html
    assert 'data-trips="[{&quot;path&quot;: [[' in html


# --- fleet-wide distance --------------------------------------------------------------------


def odometer_at(vehicle, at, km):
    TelemetrySnapshot.objects.create(
        vehicle=vehicle, captured_at=at, source="pull", data={}, odometer_km=km
    )


@time_machine.travel(NOW, tick=False)
def test_distance_per_vehicle_for_a_period_in_one_query_and_as_csv(
    viewer_client, organization, other_organization
):
    far = ClearanceFactory(
        vehicle__organization=organization, vehicle__nickname="=cmd|' /C calc'!A0"
    ).vehicle
    near = ClearanceFactory(vehicle__organization=organization, vehicle__nickname="Near").vehicle
    foreign = ClearanceFactory(vehicle__organization=other_organization).vehicle
    for vehicle, start, end in ((far, 1000, 1250.5), (near, 500, 510), (foreign, 1, 999)):
        odometer_at(vehicle, NOW - timedelta(days=3), start)
        odometer_at(vehicle, NOW - timedelta(days=1), end)
    odometer_at(far, NOW - timedelta(days=20), 10)  # before the 7 days: not counted

    with CaptureQueriesContext(connection) as queries:
        rows = list(trips.fleet_distance(organization, NOW - timedelta(days=7), NOW))
    assert len(queries) == 1
    assert [(r["vehicle__vin"], r["distance_km"]) for r in rows] == [
        (far.vin, 250.5),
        (near.vin, 10.0),
    ]
    html = viewer_client.get(reverse("telemetry:distance")).content.decode()
    assert "250.5 km" in html and "Near" in html and foreign.vin not in html
    assert "in the last 7 days" in html
    response = viewer_client.get(reverse("telemetry:distance"), {"range": "7d", "format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0][:3] == ["vin", "name", "licence_plate"]
    assert lines[1][0] == far.vin and lines[1][5] == "250.5"
    assert lines[1][1].startswith("'=")  # formula-safe
    assert len(lines) == 3
    whole = viewer_client.get(
        reverse("telemetry:distance"), {"range": "custom", "from": "2026-10-01", "to": "2026-11-21"}
    ).content.decode()
    assert "1,240.5 km" in whole or "1240.5 km" in whole
