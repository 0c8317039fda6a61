"""Tags typed in the forms accept the CSV's separator (;) as well as commas."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import ClearanceFactory, CredentialFactory
from vehicles.forms import parse_tags
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "text",
    [
        "vans; depot=hamburg",
        "vans, depot=hamburg",
        " vans ;depot = hamburg; ",
        "vans,;depot=hamburg",
    ],
)
def test_tags_are_split_on_semicolons_and_commas(text):
    assert parse_tags(text) == {"vans": "", "depot": "hamburg"}


def test_edit_details_accepts_semicolons_as_in_the_csv(manager_client, organization):
    vehicle = ClearanceFactory(vehicle__organization=organization, status="approved").vehicle
    response = manager_client.post(
        reverse("vehicles:edit", args=[vehicle.public_id]),
        {"license_plate": "", "nickname": "", "tags": "vans; depot=hamburg", "odometer_km": ""},
    )
    assert response.status_code == 302
    vehicle.refresh_from_db()
    assert vehicle.tags == {"vans": "", "depot": "hamburg"}


def test_add_vehicle_accepts_semicolons(manager_client, organization):
    credential = CredentialFactory(organization=organization)
    manager_client.post(
        reverse("vehicles:add"),
        {
            "vin": "1M8GDM9AXKP042788",
            "brand": "bmw",
            "tags": "vans;depot=berlin",
            "credential": credential.pk,
        },
    )
    assert Vehicle.objects.get().tags == {"vans": "", "depot": "berlin"}


def test_bare_tags_and_the_import_limits_are_the_same_rule_in_the_form(
    manager_client, organization
):
    vehicle = ClearanceFactory(vehicle__organization=organization, status="approved").vehicle
    url = reverse("vehicles:edit", args=[vehicle.public_id])
    long_key = "k" * 65
    response = manager_client.post(url, {"tags": f"vans, {long_key}=x", "odometer_km": ""})
    assert response.status_code == 200  # refused in words, never cut to 50 characters
    assert "is too long (names up to 64 characters" in response.content.decode()
    response = manager_client.post(url, {"tags": "vans", "odometer_km": "9 999 999 km"})
    assert response.status_code == 302
    vehicle.refresh_from_db()
    assert (vehicle.tags, vehicle.odometer_km) == ({"vans": ""}, 9_999_999)
    response = manager_client.post(url, {"tags": "", "odometer_km": "10000000"})
    assert "not a plausible odometer reading (at most 9,999,999 km)" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("q=depot%3Dmunich", ["MUNICH01"]),  # the tag as it is displayed
        ("q=depot%3DMunich", ["MUNICH01"]),  # the value in any case
        ("q=munich", ["MUNICH01"]),
        ("q=vans", ["MUNICH01", "VANS0001"]),  # a bare tag
        ("tag=vans", ["MUNICH01", "VANS0001"]),
        ("tag=depot%3Dmunich", ["MUNICH01"]),
        ("tag=depot%3Dberlin", []),
        ("tag=a__b%3D1", ["VANS0001"]),  # a key with underscores is one name, not a path
        ("q=vans+depot%3Dmunich", ["MUNICH01"]),  # every word must match
    ],
)
def test_search_and_tag_filter_understand_tags_as_displayed(
    manager_client, organization, query, found
):
    from tests.factories import VehicleFactory

    VehicleFactory(
        organization=organization, nickname="MUNICH01", tags={"depot": "munich", "vans": ""}
    )
    VehicleFactory(organization=organization, nickname="VANS0001", tags={"vans": "", "a__b": "1"})
    VehicleFactory(organization=organization, nickname="OTHER001", tags={"depot": "hamburg"})
    page = manager_client.get(reverse("vehicles:fleet") + "?" + query).content.decode()
    shown = sorted(name for name in ("MUNICH01", "VANS0001", "OTHER001") if name in page)
    assert shown == found
