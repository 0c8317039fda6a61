import pytest
from django.urls import reverse

from tests.factories import ClearanceFactory, VehicleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client, user_factory):
    client.force_login(user_factory(is_staff=True, is_superuser=True))
    return client


def test_vehicle_admin_lists_searches_and_filters(admin_client_, organization):
    ClearanceFactory(
        vehicle__organization=organization, vehicle__vin="WVWZZZ1KZ00000042", status="pending"
    )
    VehicleFactory(organization=organization, vin="WVWZZZ1KZ00000043")
    url = reverse("admin:vehicles_vehicle_changelist")
    content = admin_client_.get(url, {"q": "00000042"}).content.decode()
    assert "WVWZZZ1KZ00000042" in content and "WVWZZZ1KZ00000043" not in content
    content = admin_client_.get(url, {"clearance__status": "pending"}).content.decode()
    assert "WVWZZZ1KZ00000042" in content and "WVWZZZ1KZ00000043" not in content


def test_vehicle_admin_change_page_shows_the_clearance_inline(admin_client_, organization):
    clearance = ClearanceFactory(vehicle__organization=organization, status="approved")
    response = admin_client_.get(
        reverse("admin:vehicles_vehicle_change", args=[clearance.vehicle.pk])
    )
    content = response.content.decode()
    assert response.status_code == 200
    assert "Clearance and its event history" in content
    assert "not-a-real-secret" not in content
