"""Add a vehicle: the HM application is preselected only when there is exactly one; a VIN already
in the fleet links to that vehicle, without the check-digit warning."""

from __future__ import annotations

import pytest
from django.urls import reverse

from clearance.models import Credential
from tests.factories import CredentialFactory, VehicleFactory
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
GOOD_VIN = "1M8GDM9AXKP042788"
NO_CHECK_DIGIT_VIN = "WVWZZZ1KZ6W000001"


@pytest.fixture
def two_apps(organization):
    return (
        CredentialFactory(organization=organization, name="Alpha"),
        CredentialFactory(organization=organization, name="Beta"),
    )


def test_several_applications_start_with_an_empty_choice(manager_client, two_apps):
    content = manager_client.get(reverse("vehicles:add")).content.decode()
    assert '<option value="" selected>Choose an HM application…</option>' in content
    for credential in two_apps:
        assert f'<option value="{credential.pk}">' in content  # neither is preselected


def test_without_a_choice_nothing_is_added_and_the_error_says_so(manager_client, two_apps):
    response = manager_client.post(
        reverse("vehicles:add"), {"vin": GOOD_VIN, "brand": "bmw", "credential": ""}, headers=HTMX
    )
    assert response.status_code == 200
    assert "Choose the HM application the clearance request is sent with." in (
        response.content.decode()
    )
    assert not Vehicle.objects.exists()


def test_the_chosen_application_is_used(manager_client, two_apps):
    response = manager_client.post(
        reverse("vehicles:add"), {"vin": GOOD_VIN, "brand": "bmw", "credential": two_apps[1].pk}
    )
    assert response.status_code == 302
    assert Vehicle.objects.get().clearance.credential == two_apps[1]


def test_one_application_is_preselected_without_an_empty_choice(manager_client, organization):
    credential = CredentialFactory(organization=organization, name="Only")
    content = manager_client.get(reverse("vehicles:add")).content.decode()
    assert f'<option value="{credential.pk}" selected>' in content
    assert "Choose an HM application" not in content


def test_the_environment_is_named_once(manager_client, organization):
    CredentialFactory(organization=organization, name="Simulator")
    CredentialFactory(
        organization=organization, name="Main app", environment=Credential.Environment.PRODUCTION
    )
    content = manager_client.get(reverse("vehicles:add")).content.decode()
    assert ">Simulator (offline stand-in)</option>" in content
    assert ">Main app (Production)</option>" in content
    assert "Simulator (Simulator" not in content


def test_a_duplicate_vin_links_to_the_vehicle_without_the_check_digit_warning(
    manager_client, organization
):
    CredentialFactory(organization=organization)
    existing = VehicleFactory(organization=organization, vin=NO_CHECK_DIGIT_VIN)
    link = f'<a href="{reverse("vehicles:detail", args=[existing.public_id])}">Open its page</a>'
    feedback = manager_client.get(
        reverse("vehicles:check-vin"), {"vin": NO_CHECK_DIGIT_VIN.lower()}, headers=HTMX
    ).content.decode()
    assert f"{NO_CHECK_DIGIT_VIN} is already in your fleet. {link}" in feedback
    assert "check digit" not in feedback
    posted = manager_client.post(
        reverse("vehicles:add"), {"vin": NO_CHECK_DIGIT_VIN, "brand": "volkswagen"}, headers=HTMX
    ).content.decode()
    assert link in posted and "check digit" not in posted


def test_a_duplicate_vin_of_another_organization_is_not_linked(
    manager_client, organization, other_organization
):
    VehicleFactory(organization=other_organization, vin=GOOD_VIN)
    feedback = manager_client.get(reverse("vehicles:check-vin"), {"vin": GOOD_VIN}).content
    assert b"already in your fleet" not in feedback and b"Looks like a valid VIN" in feedback
