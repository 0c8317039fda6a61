"""Owner-only credential pages: access, validation in words, write-only secrets, test connection."""

import uuid
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from clearance.models import Credential
from tests.clearance.credential_helpers import (
    console_json,
    p256_pem,
    p384_pem,
    raw_column,
    rsa_pem,
)
from tests.factories import ClearanceFactory, CredentialFactory, VehicleFactory

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-client-secret-value-0f9a"


def list_url():
    return reverse("clearance:credentials")


def add_url():
    return reverse("clearance:credential_add")


def detail_url(credential):
    return reverse("clearance:credential_detail", args=[credential.public_id])


def check_url(credential):
    return reverse("clearance:credential_test", args=[credential.public_id])


def status_url(credential):
    return reverse("clearance:credential_test_status", args=[credential.public_id])


def base_data(**overrides):
    data = {
        "name": "Production app",
        "environment": "sandbox",
        "auth_mode": "client_secret",
        "client_id": "0f1e2d3c-aaaa-bbbb-cccc-1234567890ab",
        "client_secret": SECRET,
        "webhook_secret": "whsec-do-not-show",
        "private_key_id": "",
        "service_account_key_id": "",
        "app_id": "",
        "mqtt_client_certificate": "",
        "private_key_pem": "",
        "mqtt_client_key": "",
    }
    data.update(overrides)
    return data


# --- access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("client_name", ["manager_client", "viewer_client"])
def test_non_owners_get_403_everywhere(request, client_name, organization):
    client = request.getfixturevalue(client_name)
    credential = CredentialFactory(organization=organization)
    assert client.get(list_url()).status_code == 403
    assert client.get(add_url()).status_code == 403
    assert client.post(add_url(), base_data()).status_code == 403
    assert client.get(detail_url(credential)).status_code == 403
    assert client.post(detail_url(credential), base_data()).status_code == 403
    assert client.post(check_url(credential)).status_code == 403
    assert client.get(status_url(credential)).status_code == 403
    assert not Credential.objects.filter(name="Production app").exists()


def test_another_organizations_credential_is_404(owner_client, other_organization):
    theirs = CredentialFactory(organization=other_organization)
    assert owner_client.get(detail_url(theirs)).status_code == 404
    assert owner_client.post(detail_url(theirs), base_data()).status_code == 404
    assert owner_client.post(check_url(theirs)).status_code == 404
    assert owner_client.get(status_url(theirs)).status_code == 404
    response = owner_client.get(reverse("clearance:credential_detail", args=[uuid.uuid4()]))
    assert response.status_code == 404
    assert theirs.name not in owner_client.get(list_url()).content.decode()


def test_anonymous_is_sent_to_login(client):
    response = client.get(list_url())
    assert response.status_code == 302
    assert "/login" in response["Location"]


def test_nav_shows_credentials_to_owners_only(owner_client, manager_client):
    home = reverse("vehicles:fleet")
    assert list_url() in owner_client.get(home).content.decode()
    assert list_url() not in manager_client.get(home).content.decode()


# --- list -------------------------------------------------------------------------------------


def test_list_shows_credentials_webhook_url_and_marks_the_simulator(
    owner_client, organization, settings
):
    settings.SITE_URL = "https://fleet.example.com"
    sim = CredentialFactory(organization=organization, name="Offline", client_secret=SECRET)
    real = CredentialFactory(organization=organization, name="Real one", environment="production")
    html = owner_client.get(list_url()).content.decode()
    assert "Offline" in html and "Real one" in html
    assert f"https://fleet.example.com/webhooks/high-mobility/{sim.public_id}/" in html
    assert f"https://fleet.example.com/webhooks/high-mobility/{real.public_id}/" in html
    assert 'class="env-badge env-simulator"' in html
    assert SECRET not in html and "webhook-secret" not in html


def test_list_empty_state(owner_client):
    html = owner_client.get(list_url()).content.decode()
    assert "No credentials yet" in html


# --- add --------------------------------------------------------------------------------------


def test_add_client_secret_credential_encrypts_secrets_at_rest(owner_client, organization):
    response = owner_client.post(add_url(), base_data())
    credential = Credential.objects.get(name="Production app")
    assert response.status_code == 302
    assert response["Location"] == detail_url(credential)
    assert credential.organization == organization
    assert credential.client_secret == SECRET
    assert credential.client_secret_set_at is not None
    assert credential.webhook_secret_set_at is not None
    assert credential.private_key_set_at is None
    raw_secret = raw_column(Credential, credential.pk, "client_secret")
    raw_webhook = raw_column(Credential, credential.pk, "webhook_secret")
    assert raw_secret and SECRET not in raw_secret and raw_secret.startswith("gAAAA")
    assert "whsec-do-not-show" not in raw_webhook


def test_add_private_key_from_console_json_upload(owner_client):
    pem = p256_pem()
    upload = SimpleUploadedFile(
        "private_key.json", console_json(pem, "key-id-123").encode(), "application/json"
    )
    data = base_data(auth_mode="private_key", client_secret="")
    data["private_key_file"] = upload
    response = owner_client.post(add_url(), data)
    assert response.status_code == 302, response.content.decode()
    credential = Credential.objects.get(name="Production app")
    assert credential.private_key_id == "key-id-123"
    assert credential.private_key.strip() == pem.strip()
    assert credential.private_key_set_at is not None
    assert "PRIVATE KEY" not in raw_column(Credential, credential.pk, "private_key")


def test_add_private_key_from_pasted_pem_needs_the_key_id(owner_client):
    data = base_data(auth_mode="private_key", client_secret="", private_key_pem=p256_pem())
    response = owner_client.post(add_url(), data)
    assert response.status_code == 200
    assert "Enter the private key id" in response.content.decode()
    data["private_key_id"] = "key-id-9"
    response = owner_client.post(add_url(), data)
    assert response.status_code == 302
    assert Credential.objects.get(name="Production app").private_key_id == "key-id-9"


def test_add_service_account_takes_the_key_id_from_the_json(owner_client):
    data = base_data(auth_mode="service_account", client_secret="", client_id="")
    data["private_key_file"] = SimpleUploadedFile(
        "sa.json", console_json(p256_pem(), "sa-key-1").encode()
    )
    response = owner_client.post(add_url(), data)
    assert response.status_code == 302, response.content.decode()
    credential = Credential.objects.get(name="Production app")
    assert credential.service_account_key_id == "sa-key-1"
    assert credential.private_key_id == ""


@pytest.mark.parametrize(
    ("material", "words"),
    [
        ("not a key at all", "This is not a PEM private key"),
        (
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "the PEM is damaged or incomplete",
        ),
        ("rsa", "not an EC P-256 key"),
        ("p384", "not an EC P-256 key"),
        ('{"private_key": "x"}', "missing &quot;id&quot;"),
        ('{"id": "abc"}', "missing &quot;private_key&quot;"),
        ("{broken json", "cannot be read"),
    ],
)
def test_bad_key_material_is_explained_and_never_echoed(owner_client, material, words):
    if material == "rsa":
        material = rsa_pem()
    elif material == "p384":
        material = p384_pem()
    data = base_data(auth_mode="private_key", private_key_id="kid", client_secret="")
    data["private_key_file"] = SimpleUploadedFile("key.json", material.encode())
    response = owner_client.post(add_url(), data)
    html = response.content.decode()
    assert response.status_code == 200
    assert words in html
    assert not Credential.objects.exists()
    # The pasted/uploaded key and the typed secrets are not rendered back.
    assert "PRIVATE KEY-----\nAAAA" not in html
    assert "whsec-do-not-show" not in html


def test_errors_do_not_render_typed_secrets_back(owner_client):
    data = base_data(client_id="", private_key_pem=p256_pem(), mqtt_client_key="mqtt-key-secret")
    response = owner_client.post(add_url(), data)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Enter the OAuth client id" in html
    assert SECRET not in html
    assert "BEGIN PRIVATE KEY" not in html
    assert "mqtt-key-secret" not in html
    assert "whsec-do-not-show" not in html


def test_client_secret_mode_requires_the_secret(owner_client):
    response = owner_client.post(add_url(), base_data(client_secret=""))
    assert "Enter the client secret" in response.content.decode()
    assert not Credential.objects.exists()


def test_upload_and_paste_together_is_refused(owner_client):
    data = base_data(auth_mode="private_key", private_key_id="k", private_key_pem=p256_pem())
    data["private_key_file"] = SimpleUploadedFile("k.json", console_json(p256_pem()).encode())
    response = owner_client.post(add_url(), data)
    assert "not both" in response.content.decode()


def test_duplicate_name_in_the_same_organization(owner_client, organization):
    CredentialFactory(organization=organization, name="Production app")
    response = owner_client.post(add_url(), base_data())
    assert "Another credential of this organization has that name" in response.content.decode()


# --- edit -------------------------------------------------------------------------------------


def test_edit_keeps_blank_secrets_and_replaces_typed_ones(owner_client, organization):
    owner_client.post(add_url(), base_data())
    credential = Credential.objects.get()
    first_set_at = credential.client_secret_set_at
    page = owner_client.get(detail_url(credential)).content.decode()
    assert "Set on" in page and SECRET not in page and "whsec-do-not-show" not in page

    response = owner_client.post(
        detail_url(credential), base_data(name="Renamed", client_secret="", webhook_secret="")
    )
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.name == "Renamed"
    assert credential.client_secret == SECRET
    assert credential.webhook_secret == "whsec-do-not-show"
    assert credential.client_secret_set_at == first_set_at

    owner_client.post(detail_url(credential), base_data(name="Renamed", client_secret="new-one"))
    credential.refresh_from_db()
    assert credential.client_secret == "new-one"
    assert credential.client_secret_set_at > first_set_at


def test_environment_is_locked_once_vehicles_use_the_credential(owner_client, organization):
    credential = CredentialFactory(organization=organization, environment="sandbox")
    ClearanceFactory(vehicle=VehicleFactory(organization=organization), credential=credential)
    response = owner_client.post(
        detail_url(credential),
        base_data(name=credential.name, environment="production", client_secret=""),
    )
    assert "cannot change" in response.content.decode()
    credential.refresh_from_db()
    assert credential.environment == "sandbox"


def test_simulator_detail_page_warns_it_is_not_real(owner_client, organization):
    credential = CredentialFactory(organization=organization)
    html = owner_client.get(detail_url(credential)).content.decode()
    assert "offline stand-in" in html
    assert "not-a-real-secret" not in html and "webhook-secret" not in html


# --- test connection (queued; the worker test is in test_credentials_worker.py) ----------------


def test_test_button_starts_a_background_check_and_polls_until_done(
    owner_client, organization, django_capture_on_commit_callbacks
):
    credential = CredentialFactory(organization=organization)
    with (
        mock.patch("clearance.tasks.test_connection.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = owner_client.post(check_url(credential), HTTP_HX_REQUEST="true")
    delay.assert_called_once_with(credential.pk)
    html = response.content.decode()
    assert 'id="credential-check"' in html
    assert 'hx-trigger="every 1s"' in html
    assert "Testing the connection" in html
    assert "<html" not in html  # just the partial

    # A second press while running does not queue another check.
    with mock.patch("clearance.tasks.test_connection.delay") as delay:
        owner_client.post(check_url(credential), HTTP_HX_REQUEST="true")
    delay.assert_not_called()

    Credential.objects.filter(pk=credential.pk).update(
        last_check_ok=False, last_check_message="The client secret is wrong."
    )
    html = owner_client.get(status_url(credential), HTTP_HX_REQUEST="true").content.decode()
    assert "The client secret is wrong." in html
    assert "hx-trigger" not in html  # polling stops


def test_test_button_without_javascript_redirects(owner_client, organization):
    credential = CredentialFactory(organization=organization)
    with mock.patch("clearance.tasks.test_connection.delay"):
        response = owner_client.post(check_url(credential))
    assert response.status_code == 302
    assert response["Location"] == detail_url(credential)


def test_a_check_nobody_finishes_is_reported_and_polling_stops(
    owner_client, organization, time_machine
):
    from datetime import UTC, datetime, timedelta

    from clearance.services.credentials import record_check

    time_machine.move_to(datetime(2026, 5, 1, 12, 0, tzinfo=UTC), tick=False)
    credential = CredentialFactory(organization=organization)
    record_check(credential, ok=None, message="")
    html = owner_client.get(status_url(credential), HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in html
    time_machine.move_to(datetime(2026, 5, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=4))
    html = owner_client.get(status_url(credential), HTTP_HX_REQUEST="true").content.decode()
    assert "Is a background worker running?" in html
    assert "hx-trigger" not in html
    # And it can be started again.
    with mock.patch("clearance.tasks.test_connection.delay"):
        html = owner_client.post(check_url(credential), HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in html


def delete_url(credential):
    return reverse("clearance:credential_delete", args=[credential.public_id])


def test_owner_deletes_an_unused_credential(owner_client, organization):
    credential = CredentialFactory(organization=organization)
    assert "Delete credential" in owner_client.get(detail_url(credential)).content.decode()
    response = owner_client.post(delete_url(credential))
    assert response.status_code == 302 and response["Location"] == list_url()
    assert not Credential.objects.filter(pk=credential.pk).exists()


def test_a_credential_in_use_is_not_deleted(owner_client, organization):
    credential = CredentialFactory(organization=organization)
    ClearanceFactory(vehicle=VehicleFactory(organization=organization), credential=credential)
    assert "Delete credential" not in owner_client.get(detail_url(credential)).content.decode()
    response = owner_client.post(delete_url(credential), follow=True)
    assert "cannot be deleted" in response.content.decode()
    assert Credential.objects.filter(pk=credential.pk).exists()


def test_delete_is_owner_only_and_scoped(
    manager_client, viewer_client, owner_client, organization, other_organization
):
    ours = CredentialFactory(organization=organization)
    theirs = CredentialFactory(organization=other_organization)
    assert manager_client.post(delete_url(ours)).status_code == 403
    assert viewer_client.post(delete_url(ours)).status_code == 403
    assert owner_client.post(delete_url(theirs)).status_code == 404
    assert owner_client.get(delete_url(ours)).status_code == 405
    assert Credential.objects.count() == 2
