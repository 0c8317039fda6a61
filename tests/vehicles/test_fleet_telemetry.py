"""The fleet list's telemetry columns: cells from LatestTelemetry, sorting, the telemetry filters
(shared with bulk actions and the export), remembered columns, and a constant query count."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from clearance.selectors import filter_fleet, parse_fleet_filter
from telemetry.models import FleetColumns, LatestTelemetry, Place
from tests.vehicles.test_fleet_overview import make_fleet
from vehicles.models import Vehicle

DEPOT = (52.52, 13.405)


def report(vehicle, *, battery=None, fuel=None, lat=None, lon=None, hours_ago=0.0, km=1000.0):
    at = timezone.now() - timedelta(hours=hours_ago)
    levels = [v for v in (battery, fuel) if v is not None]
    LatestTelemetry.objects.update_or_create(
        vehicle=vehicle,
        defaults={
            "captured_at": at,
            "battery_level": battery,
            "fuel_level": fuel,
            "energy_level": min(levels) if levels else None,
            "energy_at": at,
            "estimated_range_km": 250.0,
            "odometer_km": km,
            "latitude": lat,
            "longitude": lon,
            "position_at": at if lat is not None else None,
        },
    )
    Vehicle.objects.filter(pk=vehicle.pk).update(last_seen_at=at)


@pytest.fixture
def fleet(organization):
    """Van 0 at the depot with a low battery; Van 1 fuel, away, silent 5 h; Van 2 approved without
    data; Van 3 pending (with old data, never shown); Van 4 silent for 3 days."""
    vans = make_fleet(organization, ["approved", "approved", "approved", "pending", "approved"])
    report(vans[0], battery=0.12, lat=DEPOT[0], lon=DEPOT[1], km=15_000)
    report(vans[1], fuel=0.64, lat=48.1, lon=11.5, hours_ago=5, km=42_000)
    report(vans[3], battery=0.05, lat=DEPOT[0], lon=DEPOT[1])
    report(vans[4], battery=0.9, lat=48.1, lon=11.6, hours_ago=72, km=1000)
    Place.objects.create(
        organization=organization,
        name="Depot North",
        latitude=DEPOT[0],
        longitude=DEPOT[1],
        radius_m=300,
    )
    return vans


def row_html(html: str, vehicle) -> str:
    return re.search(rf'<tr id="row-{vehicle.public_id}".*?</tr>', html, re.S)[0]


def test_approved_vehicles_show_their_newest_telemetry(manager_client, fleet):
    html = manager_client.get(reverse("vehicles:fleet")).content.decode()
    van0 = row_html(html, fleet[0])
    assert 'class="energy-low">Battery 12 %' in van0
    assert "250 km" in van0 and "15,000 km" in van0
    assert "at Depot North" in van0 and "Reporting" in van0
    van1 = row_html(html, fleet[1])
    assert "Fuel 64 %" in van1 and "48.10000, 11.50000" in van1 and "Silent for 5 h" in van1
    assert "Silent for 3 days" in row_html(html, fleet[4])
    assert "No data yet" in row_html(html, fleet[2])
    pending = row_html(html, fleet[3])
    assert "Battery" not in pending and "Depot North" not in pending  # not approved: a dash
    for heading in ("Battery / fuel", "Range", "Odometer", "Last position", "Reporting"):
        assert f">{heading}" in html


def test_sorting_by_energy_puts_vehicles_without_data_last(organization, fleet):
    def order(sort: str) -> list[str]:
        rows = filter_fleet(organization, parse_fleet_filter({"sort": sort}))
        return [v.nickname for v in rows]

    assert order("energy")[:3] == ["Van 0", "Van 1", "Van 4"]
    assert order("-energy")[:3] == ["Van 4", "Van 1", "Van 0"]
    assert order("energy")[-1] in {"Van 2", "Van 3"} and order("-energy")[-1] in {"Van 2", "Van 3"}
    assert order("-odometer")[0] == "Van 1"


def test_telemetry_filters_apply_to_approved_vehicles(organization, fleet):
    def names(**params) -> set[str]:
        return {v.nickname for v in filter_fleet(organization, parse_fleet_filter(params))}

    place = Place.objects.get(name="Depot North")
    assert names(energy_below="50") == {"Van 0"}  # Van 3 is pending: not counted
    assert names(energy_below="70") == {"Van 0", "Van 1"}
    assert names(silent_hours="4") == {"Van 1", "Van 2", "Van 4"}  # Van 2 never reported
    assert names(silent_hours="48") == {"Van 2", "Van 4"}
    assert names(place=str(place.public_id)) == {"Van 0"}
    assert names(place=str(place.public_id), energy_below="10") == set()
    # Unreadable values are ignored, never an error.
    assert len(names(energy_below="lots", silent_hours="-3", place="nowhere")) == 5
    assert parse_fleet_filter({"energy_below": "25"}).as_params() == {"energy_below": "25"}


def test_another_organizations_place_filters_nothing_in(organization, other_organization, fleet):
    theirs = Place.objects.create(
        organization=other_organization,
        name="Theirs",
        latitude=DEPOT[0],
        longitude=DEPOT[1],
        radius_m=300,
    )
    assert not filter_fleet(organization, parse_fleet_filter({"place": str(theirs.public_id)}))


def test_the_page_filters_and_the_export_and_bulk_actions_follow(manager_client, fleet):
    html = manager_client.get(reverse("vehicles:fleet"), {"energy_below": "50"}).content.decode()
    assert fleet[0].vin in html and fleet[1].vin not in html
    assert 'name="energy_below" value="50"' in html  # bulk form and links keep the filter
    export = manager_client.get(reverse("imports:export"), {"energy_below": "50"})
    text = b"".join(export.streaming_content).decode("utf-8-sig")
    assert fleet[0].vin in text and fleet[1].vin not in text
    confirm = manager_client.post(
        reverse("vehicles:bulk"), {"action": "defleet", "scope": "filter", "energy_below": "50"}
    )
    assert "1 approved vehicle(s) lose data access" in confirm.content.decode()


def test_columns_are_remembered_per_member(manager_client, viewer_client, organization, fleet):
    response = manager_client.post(
        reverse("telemetry:fleet_columns"),
        {"show": ["energy", "freshness"], "next": "/fleet/?sort=-energy"},
    )
    assert response.status_code == 302 and response["Location"] == "/fleet/?sort=-energy"
    html = manager_client.get(reverse("vehicles:fleet")).content.decode()
    assert ">Battery / fuel" in html and ">Odometer" not in html and "15,000 km" not in html
    assert 'value="odometer">' in html  # offered again in the chooser, unticked
    # Another member's list is theirs.
    assert ">Odometer" in viewer_client.get(reverse("vehicles:fleet")).content.decode()
    assert FleetColumns.objects.get().hidden == ["range", "odometer", "position"]
    # Never a redirect elsewhere.
    away = manager_client.post(
        reverse("telemetry:fleet_columns"), {"show": "energy", "next": "https://evil.example/"}
    )
    assert away["Location"] == reverse("vehicles:fleet")


@pytest.mark.parametrize("filters", [{}, {"energy_below": "80", "sort": "-energy"}])
def test_the_list_costs_the_same_queries_for_5_and_205_vehicles(
    manager_client, organization, fleet, filters, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert manager_client.get(reverse("vehicles:fleet"), filters).status_code == 200
        return len(captured)

    few = queries()
    more = make_fleet(organization, ["approved"] * 200, start=100)
    for n, vehicle in enumerate(more):
        report(vehicle, battery=(n % 100) / 100, lat=DEPOT[0], lon=DEPOT[1] + n / 1000)
    assert queries() == few


def test_a_viewer_sees_the_columns_and_may_choose_them(viewer_client, organization, fleet):
    assert viewer_client.get(reverse("vehicles:fleet")).status_code == 200
    response = viewer_client.post(reverse("telemetry:fleet_columns"), {"show": "energy"})
    assert response.status_code == 302
    assert FleetColumns.objects.get().hidden == ["range", "odometer", "position", "freshness"]
