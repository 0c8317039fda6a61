"""A crash while saving a credential never puts its secrets on Django's debug page (DEBUG is on
under `make run`) or in an error report: POST values and every local variable are starred."""

import sys
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.views.debug import ExceptionReporter

from clearance.models import Credential
from tests.clearance.credential_helpers import console_json, p256_pem
from tests.conftest import logged_in_client
from tests.factories import CredentialFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-client-secret-4d1f"
WEBHOOK_SECRET = "whsec-never-on-a-debug-page"


@pytest.fixture
def debug_on(settings):
    settings.DEBUG = True


def _pem_body_line(pem: str) -> str:
    """A line of the key's base64 body: distinctive, and unchanged by HTML escaping."""
    return pem.strip().splitlines()[1]


def _crashing_save():
    # Fails inside the form's save, with the secret as an argument in the frames below the view.
    return mock.patch("clearance.forms.set_secret", side_effect=RuntimeError("disk on fire"))


def _debug_page(client: Client, url: str, data: dict) -> str:
    client.raise_request_exception = False
    with _crashing_save():
        response = client.post(url, data)
    assert response.status_code == 500
    html = response.content.decode()
    # The page is the real debug page with the traceback, not a bare 500.
    assert "disk on fire" in html and "set_secret" in html
    return html


def _owner_client(owner_user, organization) -> Client:
    return logged_in_client(owner_user, organization)


def _page_data(**overrides) -> dict:
    data = {
        "name": "Production app",
        "environment": "sandbox",
        "auth_mode": "client_secret",
        "client_id": "0f1e2d3c-aaaa-bbbb-cccc-1234567890ab",
        "client_secret": SECRET,
        "webhook_secret": WEBHOOK_SECRET,
        "private_key_id": "",
        "service_account_key_id": "",
        "app_id": "",
        "mqtt_client_certificate": "",
        "private_key_pem": "",
        "mqtt_client_key": "",
    }
    data.update(overrides)
    return data


def test_add_page_crash_hides_the_client_secret(debug_on, owner_user, organization):
    html = _debug_page(
        _owner_client(owner_user, organization), reverse("clearance:credential_add"), _page_data()
    )
    assert SECRET not in html
    assert WEBHOOK_SECRET not in html
    assert "client_secret" in html  # the parameter is listed, its value starred


def test_add_page_crash_hides_a_pasted_pem(debug_on, owner_user, organization):
    pem = p256_pem()
    data = _page_data(
        auth_mode="private_key", client_secret="", private_key_pem=pem, private_key_id="kid-1"
    )
    html = _debug_page(
        _owner_client(owner_user, organization), reverse("clearance:credential_add"), data
    )
    assert _pem_body_line(pem) not in html


def test_detail_page_crash_hides_an_uploaded_key(debug_on, owner_user, organization):
    credential = CredentialFactory(organization=organization, auth_mode="private_key")
    pem = p256_pem()
    data = _page_data(name=credential.name, auth_mode="private_key", client_secret="")
    data["private_key_file"] = SimpleUploadedFile(
        "private_key.json", console_json(pem, "kid-2").encode(), "application/json"
    )
    url = reverse("clearance:credential_detail", args=[credential.public_id])
    html = _debug_page(_owner_client(owner_user, organization), url, data)
    assert _pem_body_line(pem) not in html
    assert WEBHOOK_SECRET not in html


def test_error_report_of_a_crash_in_the_view_is_cleansed(owner_user, organization):
    """What logging/mail handlers get (ExceptionReporter), with DEBUG off as in production."""
    client = _owner_client(owner_user, organization)
    reports = []

    def capture(sender, request, **kwargs):
        reports.append(ExceptionReporter(request, *sys.exc_info()).get_traceback_text())

    from django.core.signals import got_request_exception

    got_request_exception.connect(capture)
    client.raise_request_exception = False
    try:
        with _crashing_save():
            client.post(reverse("clearance:credential_add"), _page_data())
    finally:
        got_request_exception.disconnect(capture)
    assert reports and "disk on fire" in reports[0]
    assert SECRET not in reports[0] and WEBHOOK_SECRET not in reports[0]


def _admin_data(organization, **overrides) -> dict:
    data = {
        "organization": organization.pk,
        "name": "Admin app",
        "environment": "sandbox",
        "auth_mode": "client_secret",
        "client_id": "cid",
        "client_secret": SECRET,
        "private_key_pem": "",
        "private_key_id": "",
        "service_account_key_id": "",
        "webhook_secret": WEBHOOK_SECRET,
        "app_id": "",
        "mqtt_client_certificate": "",
        "mqtt_client_key": "",
    }
    data.update(overrides)
    return data


def test_admin_add_crash_hides_secrets(debug_on, admin_client):
    organization = OrganizationFactory()
    html = _debug_page(
        admin_client, reverse("admin:clearance_credential_add"), _admin_data(organization)
    )
    assert SECRET not in html and WEBHOOK_SECRET not in html


def test_admin_change_crash_hides_a_pasted_pem(debug_on, admin_client):
    credential = CredentialFactory(auth_mode="private_key")
    pem = p256_pem()
    data = _admin_data(
        credential.organization,
        name=credential.name,
        auth_mode="private_key",
        client_secret="",
        private_key_pem=pem,
        private_key_id="kid-3",
    )
    url = reverse("admin:clearance_credential_change", args=[credential.pk])
    html = _debug_page(admin_client, url, data)
    assert _pem_body_line(pem) not in html
    assert Credential.objects.get(pk=credential.pk).private_key_id != "kid-3"  # rolled back
