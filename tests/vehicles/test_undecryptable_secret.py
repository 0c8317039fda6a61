"""One credential secret that no configured key can decrypt (say, a key dropped from
FIELD_ENCRYPTION_KEYS too early) must not break pages that only show the credential's name."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.urls import reverse

from clearance.models import Clearance, Credential, WebhookDelivery
from tests.factories import CredentialFactory, VehicleFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def _break_secret(credential: Credential) -> None:
    """Store a client secret encrypted with a key the portal does not have."""
    token = Fernet(Fernet.generate_key()).encrypt(b"old-secret").decode()
    table = connection.ops.quote_name(Credential._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET client_secret = %s WHERE id = %s", [token, credential.pk]
        )


@pytest.fixture
def broken(organization):
    credential = CredentialFactory(organization=organization, name="Old key app")
    vehicle = VehicleFactory(organization=organization)
    Clearance.objects.create(vehicle=vehicle, credential=credential, status="pending")
    _break_secret(credential)
    # The fixture really is undecryptable: loading the whole credential fails.
    with pytest.raises(ImproperlyConfigured, match="cannot be decrypted"):
        Credential.objects.get(pk=credential.pk)
    return credential, vehicle


def test_fleet_list_still_shows_the_vehicle_and_its_credential(manager_client, broken):
    response = manager_client.get(reverse("vehicles:fleet"))
    assert response.status_code == 200
    html = response.content.decode()
    assert broken[1].vin in html and "Old key app" in html


def test_polled_row_and_vehicle_page_still_load(manager_client, broken):
    vehicle = broken[1]
    row = manager_client.get(reverse("vehicles:row", args=[vehicle.public_id]), headers=HTMX)
    assert row.status_code == 200 and "Old key app" in row.content.decode()
    page = manager_client.get(reverse("vehicles:detail", args=[vehicle.public_id]))
    assert page.status_code == 200 and "Old key app" in page.content.decode()


def test_credential_pickers_still_load(manager_client, broken):
    vehicle = broken[1]
    CredentialFactory(organization=vehicle.organization, name="Second app")  # a picker shows
    add = manager_client.get(reverse("vehicles:add"))
    assert add.status_code == 200 and "Old key app" in add.content.decode()
    preview = manager_client.post(
        reverse("vehicles:bulk"), {"action": "request", "vehicle": [str(vehicle.public_id)]}
    )
    assert preview.status_code == 200 and "Old key app" in preview.content.decode()


def test_admin_lists_that_name_the_credential_still_load(admin_client, broken):
    credential = broken[0]
    WebhookDelivery.objects.create(
        credential=credential, delivery_id="d-1", event="ping", payload={"event": "ping"}
    )
    for name in ("clearance", "webhookdelivery"):
        response = admin_client.get(reverse(f"admin:clearance_{name}_changelist"))
        assert response.status_code == 200, name
        assert "Old key app" in response.content.decode()


def test_the_import_page_still_offers_the_credential(manager_client, broken):
    credential, _vehicle = broken
    response = manager_client.get(reverse("imports:upload"))
    assert response.status_code == 200
    assert credential.name in response.content.decode()
