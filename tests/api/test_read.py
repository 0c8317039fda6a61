"""GET /vehicles, /vehicles/{vin}, /events, /telemetry: filters, pagination, scoping, queries."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clearance.models import ClearanceEvent, ClearanceStatus
from telemetry.models import TelemetrySnapshot
from tests.api.conftest import vin
from tests.factories import ClearanceFactory, VehicleFactory

pytestmark = pytest.mark.django_db


def _fleet(organization, credential, n, start=0):
    vehicles = []
    for i in range(start, start + n):
        vehicle = VehicleFactory(
            organization=organization, vin=vin(i), tags={"depot": "berlin" if i % 2 else "hamburg"}
        )
        ClearanceFactory(
            vehicle=vehicle,
            credential=credential,
            status=ClearanceStatus.APPROVED if i % 3 == 0 else ClearanceStatus.PENDING,
            status_changed_at=timezone.now(),
        )
        vehicles.append(vehicle)
    return vehicles


def _snapshot(vehicle, minutes_ago, **values):
    return TelemetrySnapshot.objects.create(
        vehicle=vehicle,
        captured_at=timezone.now() - timedelta(minutes=minutes_ago),
        source=TelemetrySnapshot.Source.PULL,
        data={},
        **values,
    )


def test_vehicle_items_carry_clearance_and_latest_telemetry(reader, organization, credential):
    (vehicle,) = _fleet(organization, credential, 1)
    vehicle.clearance.last_error = "High Mobility refused the request: nope."
    vehicle.clearance.save()
    _snapshot(vehicle, 120, odometer_km=1000.0)
    _snapshot(vehicle, 1, odometer_km=1234.5, battery_level=0.8, latitude=52.5, longitude=13.4)
    body = reader.get("/api/v1/vehicles").json()
    (item,) = body["items"]
    assert body["next_cursor"] is None
    assert item["vin"] == vehicle.vin
    assert item["clearance"]["status"] == "approved"
    assert item["clearance"]["status_words"].startswith("Approved")
    assert item["clearance"]["since"] is not None
    assert item["clearance"]["last_error"] == "High Mobility refused the request: nope."
    assert item["clearance"]["hm_application"]["name"] == "Main app"
    assert item["telemetry"]["odometer_km"] == 1234.5
    assert item["telemetry"]["battery_level"] == 0.8
    assert item["telemetry"]["position"] == {"latitude": 52.5, "longitude": 13.4}
    assert item["telemetry"]["fresh"] is True


def test_never_requested_vehicle_says_none(reader, organization):
    VehicleFactory(organization=organization, vin=vin(5))
    (item,) = reader.get("/api/v1/vehicles").json()["items"]
    assert item["clearance"]["status"] == "none"
    assert item["telemetry"] is None


def test_filters_of_the_fleet_page(reader, organization, credential):
    _fleet(organization, credential, 6)
    VehicleFactory(organization=organization, vin=vin(99), brand="bmw", nickname="Van 12")

    def vins(**params):
        return sorted(i["vin"] for i in reader.get("/api/v1/vehicles", params).json()["items"])

    assert vins(status="approved") == [vin(0), vin(3)]
    assert vins(status="none") == [vin(99)]
    assert vins(brand="bmw") == [vin(99)]
    assert vins(tag="depot=berlin") == [vin(1), vin(3), vin(5)]
    assert vins(tag="depot") == [vin(i) for i in range(6)]
    assert vins(q="van 12") == [vin(99)]
    assert vins(hm_application=str(credential.public_id)) == [vin(i) for i in range(6)]


def test_bad_filter_is_400_with_the_field(reader):
    response = reader.get("/api/v1/vehicles", {"status": "approvd"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"][0]["field"] == "status"


def test_bad_cursor_and_limit_are_400(reader):
    assert reader.get("/api/v1/vehicles", {"cursor": "garbage"}).status_code == 400
    assert reader.get("/api/v1/vehicles", {"limit": 0}).status_code == 400
    assert reader.get("/api/v1/vehicles", {"limit": 501}).status_code == 400
    response = reader.get("/api/v1/vehicles", {"limit": "many"})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "limit"


def test_pagination_neither_skips_nor_repeats_while_vehicles_are_added(
    reader, organization, credential
):
    _fleet(organization, credential, 25)
    seen = []
    cursor = None
    added = 100
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = reader.get("/api/v1/vehicles", params).json()
        seen += [item["vin"] for item in page["items"]]
        # Someone adds vehicles between two pages, with VINs sorting before and after.
        VehicleFactory(organization=organization, vin=vin(added))
        VehicleFactory(organization=organization, vin=f"AAAAA{added:012d}")
        added += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert {vin(i) for i in range(25)} <= set(seen)


def test_a_page_costs_the_same_queries_for_10_and_100_vehicles(reader, organization, credential):
    def queries_for(limit):
        with CaptureQueriesContext(connection) as ctx:
            assert len(reader.get("/api/v1/vehicles", {"limit": limit}).json()["items"]) == limit
        return len(ctx)

    vehicles = _fleet(organization, credential, 100)
    for vehicle in vehicles:
        _snapshot(vehicle, 5, odometer_km=1.0)
    queries_for(1)  # the token's first use of the minute also records it
    assert queries_for(10) == queries_for(100) <= 3


def test_other_organizations_vehicle_is_404(reader, other_organization):
    theirs = VehicleFactory(organization=other_organization, vin=vin(7))
    for path in ("", "/events", "/telemetry"):
        response = reader.get(f"/api/v1/vehicles/{theirs.vin}{path}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert reader.get("/api/v1/vehicles").json()["items"] == []


def test_one_vehicle_by_vin_forgives_case(reader, organization, credential):
    (vehicle,) = _fleet(organization, credential, 1)
    response = reader.get(f"/api/v1/vehicles/{vehicle.vin.lower()}")
    assert response.status_code == 200
    assert response.json()["vin"] == vehicle.vin


def test_events_newest_first_with_cursor(reader, organization, credential):
    (vehicle,) = _fleet(organization, credential, 1)
    for n, (old, new) in enumerate(
        [("", "queued"), ("queued", "pending"), ("pending", "approved")]
    ):
        ClearanceEvent.objects.create(
            clearance=vehicle.clearance,
            from_status=old,
            to_status=new,
            at=timezone.now() + timedelta(seconds=n),
            source="api",
        )
    first = reader.get(f"/api/v1/vehicles/{vehicle.vin}/events", {"limit": 2}).json()
    assert [e["to_status"] for e in first["items"]] == ["approved", "pending"]
    rest = reader.get(
        f"/api/v1/vehicles/{vehicle.vin}/events", {"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [e["to_status"] for e in rest["items"]] == ["queued"]
    assert rest["next_cursor"] is None


def test_telemetry_since_and_cursor(reader, organization, credential):
    (vehicle,) = _fleet(organization, credential, 1)
    for minutes in (50, 40, 30, 20, 10):
        _snapshot(vehicle, minutes, odometer_km=float(100 - minutes))
    since = (timezone.now() - timedelta(minutes=35)).isoformat()
    page = reader.get(
        f"/api/v1/vehicles/{vehicle.vin}/telemetry", {"since": since, "limit": 2}
    ).json()
    assert [s["odometer_km"] for s in page["items"]] == [70.0, 80.0]
    rest = reader.get(
        f"/api/v1/vehicles/{vehicle.vin}/telemetry", {"cursor": page["next_cursor"]}
    ).json()
    assert [s["odometer_km"] for s in rest["items"]] == [90.0]
    bad = reader.get(f"/api/v1/vehicles/{vehicle.vin}/telemetry", {"since": "yesterday"})
    assert bad.status_code == 400
