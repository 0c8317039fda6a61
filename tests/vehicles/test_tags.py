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
