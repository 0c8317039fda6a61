"""The CSV export: lossless through the import, and named after its filter."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from clearance.selectors import parse_fleet_filter
from imports import services as imports
from imports.exports import filtered_filename
from tests.factories import ClearanceFactory, VehicleFactory
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db


def export(client, **params) -> tuple[str, list[dict[str, str]]]:
    response = client.get(reverse("imports:export"), params)
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return response["Content-Disposition"], list(csv.DictReader(io.StringIO(text)))


def test_export_has_the_odometer_and_imports_back_without_loss(
    manager_client, organization, other_organization
):
    VehicleFactory(
        organization=organization,
        vin="1M8GDM9AXKP042788",
        brand="bmw",
        license_plate="B-FP 1",
        nickname="Van 1",
        tags={"vans": "", "depot": "berlin"},
        odometer_km=45_210,
    )
    VehicleFactory(organization=organization, vin="WVWZZZ1KZ6W000001", odometer_km=None)
    _, rows = export(manager_client)
    assert [row["odometer_km"] for row in rows] == ["45210", ""]
    exported = b"".join(manager_client.get(reverse("imports:export")).streaming_content)
    counts = imports.import_rows(
        io.BytesIO(exported), other_organization, credential=None, update_existing=False
    )
    assert counts.created == 2
    fields = ("vin", "brand", "license_plate", "nickname", "tags", "odometer_km")
    original = list(
        Vehicle.objects.filter(organization=organization).order_by("vin").values(*fields)
    )
    copy = list(
        Vehicle.objects.filter(organization=other_organization).order_by("vin").values(*fields)
    )
    assert copy == original


def test_the_export_file_is_named_after_the_filter(manager_client, organization):
    ClearanceFactory(vehicle__organization=organization, status="approved")
    disposition, _ = export(manager_client)
    assert disposition == 'attachment; filename="acme-fleet.csv"'
    disposition, rows = export(manager_client, status="approved")
    assert disposition == 'attachment; filename="acme-fleet-approved.csv"'
    assert len(rows) == 1
    disposition, _ = export(manager_client, status="none", brand="bmw", q='Van 1/"x"', sort="-vin")
    assert disposition == 'attachment; filename="acme-fleet-not-requested-bmw-search-van-1x.csv"'


def test_the_file_name_never_carries_unsafe_characters():
    flt = parse_fleet_filter(
        {"q": '"; evil=1\r\nX: y', "credential": "00000000-0000-0000-0000-000000000000"}
    )
    name = filtered_filename("acme-fleet.csv", flt)
    assert name == "acme-fleet-app-00000000-search-evil1-x-y.csv"
    assert filtered_filename("acme-fleet.csv", parse_fleet_filter({"sort": "-vin"})) == (
        "acme-fleet.csv"
    )
