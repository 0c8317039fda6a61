"""Editing a vehicle's details: plate, nickname, tags, odometer; never VIN or brand."""

import pytest
from django.urls import reverse

from clearance.models import ClearanceEvent
from tests.factories import ClearanceFactory
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db


@pytest.fixture
def vehicle(organization):
    clearance = ClearanceFactory(vehicle__organization=organization, status="approved")
    vehicle = clearance.vehicle
    vehicle.license_plate = "B-FP 100"
    vehicle.nickname = "Van 1"
    vehicle.tags = {"depot": "berlin"}
    vehicle.odometer_km = 1200
    vehicle.save()
    return vehicle


def edit_url(vehicle):
    return reverse("vehicles:edit", args=[vehicle.public_id])


def test_the_form_shows_the_current_details(manager_client, vehicle):
    content = manager_client.get(edit_url(vehicle)).content.decode()
    assert 'value="B-FP 100"' in content
    assert 'value="Van 1"' in content
    assert 'value="depot=berlin"' in content
    assert 'value="1200"' in content
    assert vehicle.vin in content


def test_a_manager_saves_new_details(manager_client, vehicle):
    events_before = ClearanceEvent.objects.count()
    response = manager_client.post(
        edit_url(vehicle),
        {
            "license_plate": "B-FP 200",
            "nickname": "Van 12",
            "tags": "vans, depot=hamburg",
            "odometer_km": "45000",
            # Not part of the form: ignored, the VIN and brand stay as HM knows them.
            "vin": "1M8GDM9AXKP042788",
            "brand": "bmw",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("vehicles:detail", args=[vehicle.public_id])
    vehicle.refresh_from_db()
    assert vehicle.license_plate == "B-FP 200"
    assert vehicle.nickname == "Van 12"
    assert vehicle.tags == {"vans": "", "depot": "hamburg"}
    assert vehicle.odometer_km == 45000
    assert vehicle.vin != "1M8GDM9AXKP042788"
    assert vehicle.brand == "volkswagen"
    # Editing details is not a clearance change.
    assert ClearanceEvent.objects.count() == events_before
    page = manager_client.get(response["Location"]).content.decode()
    assert f"The details of {vehicle.vin} were saved." in page
    assert "depot=hamburg" in page


def test_clearing_optional_details(manager_client, vehicle):
    manager_client.post(
        edit_url(vehicle), {"license_plate": "", "nickname": "", "tags": "", "odometer_km": ""}
    )
    vehicle.refresh_from_db()
    assert (vehicle.license_plate, vehicle.nickname, vehicle.tags, vehicle.odometer_km) == (
        "",
        "",
        {},
        None,
    )


@pytest.mark.parametrize(
    ("odometer", "message"),
    [
        ("-5", "“-5” is not a whole number of kilometres (0 or more)."),
        ("lots", "“lots” is not a whole number of kilometres (0 or more)."),
        ("10000000", "is not a plausible odometer reading (at most 9,999,999 km)."),
    ],
)
def test_bad_input_is_explained_and_nothing_is_saved(manager_client, vehicle, odometer, message):
    response = manager_client.post(
        edit_url(vehicle),
        {"license_plate": "CHANGED", "nickname": "Changed", "tags": "", "odometer_km": odometer},
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    stored = Vehicle.objects.get(pk=vehicle.pk)
    assert (stored.license_plate, stored.nickname, stored.odometer_km) == (
        "B-FP 100",
        "Van 1",
        1200,
    )


def test_an_unchanged_form_says_so(manager_client, vehicle):
    updated_at = vehicle.updated_at
    response = manager_client.post(
        edit_url(vehicle),
        {
            "license_plate": "B-FP 100",
            "nickname": "Van 1",
            "tags": "depot=berlin",
            "odometer_km": 1200,
        },
        follow=True,
    )
    assert "Nothing was changed." in response.content.decode()
    assert Vehicle.objects.get(pk=vehicle.pk).updated_at == updated_at


def test_the_detail_page_links_to_the_form_for_managers(manager_client, vehicle):
    content = manager_client.get(reverse("vehicles:detail", args=[vehicle.public_id])).content
    assert edit_url(vehicle) in content.decode()
