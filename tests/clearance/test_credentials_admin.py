"""Admin: write-only secrets with "set on", read-only history, actions that call the services."""

from datetime import UTC, datetime
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from clearance.models import ClearanceEvent, Credential, VehicleToken, WebhookDelivery
from tests.clearance.credential_helpers import console_json, p256_pem, raw_column
from tests.factories import ClearanceFactory, CredentialFactory, OrganizationFactory, VehicleFactory

pytestmark = pytest.mark.django_db

SECRETS = ["client-secret-XYZ", "webhook-secret-XYZ", "vehicle-access-XYZ", "vehicle-refresh-XYZ"]


@pytest.fixture
def world():
    org = OrganizationFactory()
    credential = CredentialFactory(
        organization=org,
        client_secret=SECRETS[0],
        webhook_secret=SECRETS[1],
        client_secret_set_at=datetime(2026, 3, 4, 5, 6, tzinfo=UTC),
    )
    clearance = ClearanceFactory(vehicle=VehicleFactory(organization=org), credential=credential)
    ClearanceEvent.objects.create(
        clearance=clearance, to_status="queued", at=datetime.now(UTC), source="system"
    )
    token = VehicleToken.objects.create(
        clearance=clearance,
        access_token=SECRETS[2],
        refresh_token=SECRETS[3],
        expires_at=datetime.now(UTC),
    )
    delivery = WebhookDelivery.objects.create(
        credential=credential, delivery_id="d-1", event="ping", payload={"event": "ping"}
    )
    return credential, clearance, token, delivery


def test_no_admin_page_shows_a_secret(admin_client, world):
    credential, clearance, token, delivery = world
    urls = [
        reverse("admin:clearance_credential_changelist"),
        reverse("admin:clearance_credential_change", args=[credential.pk]),
        reverse("admin:clearance_credential_add"),
        reverse("admin:clearance_clearance_changelist"),
        reverse("admin:clearance_clearance_change", args=[clearance.pk]),
        reverse("admin:clearance_vehicletoken_changelist"),
        reverse("admin:clearance_vehicletoken_change", args=[token.pk]),
        reverse("admin:clearance_webhookdelivery_changelist"),
        reverse("admin:clearance_webhookdelivery_change", args=[delivery.pk]),
        reverse("admin:clearance_credential_changelist") + "?q=app",
        reverse("admin:clearance_clearance_changelist") + "?status=queued",
    ]
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for secret in SECRETS:
            assert secret not in html, (url, secret)
    page = admin_client.get(urls[1]).content.decode()
    assert "set on 2026-03-04 05:06 UTC" in page
    assert f"/webhooks/high-mobility/{credential.public_id}/" in page
    assert "Simulator (not real HM)" in admin_client.get(urls[0]).content.decode()


def _admin_post_data(credential, **overrides):
    data = {
        "organization": credential.organization_id,
        "name": credential.name,
        "environment": credential.environment,
        "auth_mode": credential.auth_mode,
        "client_id": credential.client_id,
        "client_secret": "",
        "private_key_pem": "",
        "private_key_id": "",
        "service_account_key_id": "",
        "webhook_secret": "",
        "app_id": "",
        "mqtt_client_certificate": "",
        "mqtt_client_key": "",
    }
    data.update(overrides)
    return data


def test_admin_edit_keeps_blank_secrets_and_replaces_typed_ones(admin_client, world):
    credential = world[0]
    url = reverse("admin:clearance_credential_change", args=[credential.pk])
    response = admin_client.post(url, _admin_post_data(credential, name="Renamed"))
    assert response.status_code == 302, response.content.decode()[:3000]
    credential.refresh_from_db()
    assert credential.name == "Renamed" and credential.client_secret == SECRETS[0]
    admin_client.post(url, _admin_post_data(credential, client_secret="brand-new"))
    credential.refresh_from_db()
    assert credential.client_secret == "brand-new"
    assert "brand-new" not in raw_column(Credential, credential.pk, "client_secret")


def test_admin_add_private_key_credential_from_the_console_file(admin_client):
    org = OrganizationFactory()
    data = _admin_post_data(
        Credential(
            organization=org,
            name="Keyed",
            environment="sandbox",
            auth_mode="private_key",
            client_id="cid",
        ),
    )
    data["private_key_file"] = SimpleUploadedFile(
        "k.json", console_json(p256_pem(), "kid").encode()
    )
    response = admin_client.post(reverse("admin:clearance_credential_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    credential = Credential.objects.get(name="Keyed")
    assert credential.organization == org and credential.private_key_id == "kid"


def test_admin_actions_call_the_lifecycle(admin_client, world, django_capture_on_commit_callbacks):
    credential, clearance, _, _ = world
    changelist = reverse("admin:clearance_clearance_changelist")
    with (
        mock.patch("clearance.tasks.sync_credential.delay") as sync,
        django_capture_on_commit_callbacks(execute=True),
    ):
        admin_client.post(changelist, {"action": "sync_now", "_selected_action": [clearance.pk]})
    sync.assert_called_once_with(credential.pk)

    with mock.patch("clearance.services.defleet.queue_defleet", return_value=1) as defleet:
        admin_client.post(changelist, {"action": "defleet", "_selected_action": [clearance.pk]})
    assert defleet.call_args.args[0] == [clearance.vehicle_id]

    with mock.patch("clearance.services.onboarding.reonboard") as reonboard:
        reonboard.return_value.queued = 0
        reonboard.return_value.skipped_reasons = {"already queued": 1}
        response = admin_client.post(
            changelist, {"action": "request_again", "_selected_action": [clearance.pk]}, follow=True
        )
    assert reonboard.call_args.args[0] == [clearance.vehicle_id]
    assert "Skipped: 1 already queued" in response.content.decode()

    with (
        mock.patch("clearance.tasks.test_connection.delay") as test_connection,
        django_capture_on_commit_callbacks(execute=True),
    ):
        admin_client.post(
            reverse("admin:clearance_credential_changelist"),
            {"action": "test_connection", "_selected_action": [credential.pk]},
        )
    test_connection.assert_called_once_with(credential.pk)


def test_history_is_read_only(admin_client, world):
    clearance = world[1]
    html = admin_client.get(
        reverse("admin:clearance_clearance_change", args=[clearance.pk])
    ).content.decode()
    assert "queued" in html
    assert 'name="events-0-to_status"' not in html  # no editable inline rows
    assert admin_client.get(reverse("admin:clearance_clearance_add")).status_code == 403
