"""Roles and tenancy on every fleet URL: another organization's vehicle is 404 everywhere
(partials included); a viewer sees no write controls and gets 403 when posting anyway."""

import pytest
from django.urls import reverse

from clearance.models import Clearance
from tests.factories import ClearanceFactory, CredentialFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
VEHICLE_GET_URLS = ["vehicles:detail", "vehicles:row", "vehicles:status", "vehicles:edit"]
VEHICLE_POST_URLS = ["vehicles:defleet", "vehicles:reonboard", "vehicles:edit"]


@pytest.fixture
def foreign_vehicle(other_organization):
    return ClearanceFactory(vehicle__organization=other_organization, status="approved").vehicle


@pytest.fixture
def own_vehicle(organization):
    return ClearanceFactory(vehicle__organization=organization, status="approved").vehicle


@pytest.mark.parametrize("name", VEHICLE_GET_URLS)
@pytest.mark.parametrize("htmx", [False, True])
def test_other_organizations_vehicle_is_404_on_every_get(owner_client, foreign_vehicle, name, htmx):
    response = owner_client.get(
        reverse(name, args=[foreign_vehicle.public_id]), headers=HTMX if htmx else {}
    )
    assert response.status_code == 404


@pytest.mark.parametrize("name", VEHICLE_POST_URLS)
@pytest.mark.parametrize("client_fixture", ["owner_client", "manager_client", "viewer_client"])
def test_other_organizations_vehicle_is_404_on_every_post(
    request, foreign_vehicle, name, client_fixture
):
    client = request.getfixturevalue(client_fixture)
    response = client.post(reverse(name, args=[foreign_vehicle.public_id]), headers=HTMX)
    assert response.status_code == 404
    assert Clearance.objects.get(vehicle=foreign_vehicle).status == "approved"


def test_unknown_vehicle_is_404(owner_client):
    assert owner_client.get("/fleet/00000000-0000-0000-0000-000000000000/").status_code == 404


@pytest.mark.parametrize("name", VEHICLE_POST_URLS)
def test_viewer_gets_403_on_vehicle_writes(viewer_client, own_vehicle, name):
    response = viewer_client.post(reverse(name, args=[own_vehicle.public_id]), headers=HTMX)
    assert response.status_code == 403
    assert Clearance.objects.get(vehicle=own_vehicle).status == "approved"


def test_viewer_gets_403_on_add_and_bulk(viewer_client, own_vehicle, organization):
    CredentialFactory(organization=organization)
    assert viewer_client.get(reverse("vehicles:add")).status_code == 403
    assert (
        viewer_client.get(reverse("vehicles:edit", args=[own_vehicle.public_id])).status_code == 403
    )
    response = viewer_client.post(
        reverse("vehicles:add"), {"vin": "1M8GDM9AXKP042788", "brand": "bmw"}
    )
    assert response.status_code == 403
    response = viewer_client.post(
        reverse("vehicles:bulk"),
        {"action": "defleet", "scope": "filter", "confirm": "yes"},
    )
    assert response.status_code == 403
    assert Clearance.objects.get(vehicle=own_vehicle).status == "approved"


def test_viewer_can_read_every_page_without_write_controls(viewer_client, own_vehicle):
    for url in [
        reverse("vehicles:fleet"),
        reverse("vehicles:counters"),
        reverse("vehicles:detail", args=[own_vehicle.public_id]),
        reverse("vehicles:row", args=[own_vehicle.public_id]),
        reverse("vehicles:status", args=[own_vehicle.public_id]),
    ]:
        response = viewer_client.get(url)
        assert response.status_code in (200, 286), url
        content = response.content.decode()
        for control in ("defleet-dialog", "reonboard", "bulk-form", "row-select", "edit-vehicle"):
            assert control not in content, (url, control)


def test_user_without_membership_gets_an_explanation_or_404(client, user_factory, own_vehicle):
    client.force_login(user_factory())
    content = client.get(reverse("vehicles:fleet")).content.decode()
    assert "not a member of any organization" in content
    assert client.get(reverse("vehicles:detail", args=[own_vehicle.public_id])).status_code == 404
    assert client.get(reverse("vehicles:counters")).status_code == 404


def test_anonymous_is_sent_to_login(client, own_vehicle):
    for url in [
        reverse("vehicles:fleet"),
        reverse("vehicles:detail", args=[own_vehicle.public_id]),
        reverse("vehicles:row", args=[own_vehicle.public_id]),
    ]:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]
