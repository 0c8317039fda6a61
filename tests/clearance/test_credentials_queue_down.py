""" "Test connection" while the broker is down: the owner is told in words, never a 500."""

from unittest import mock

import pytest
from django.urls import reverse
from kombu.exceptions import OperationalError

from clearance.models import Credential
from clearance.views import CHECK_NOT_STARTED
from tests.factories import CredentialFactory

# Committed transactions, as in production: the task is handed to the broker during the request.
pytestmark = pytest.mark.django_db(transaction=True)

BROKER_DOWN = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def _broker_down():
    return mock.patch("clearance.tasks.test_connection.delay", side_effect=BROKER_DOWN)


def check_url(credential):
    return reverse("clearance:credential_test", args=[credential.public_id])


def test_htmx_button_says_the_check_could_not_start(owner_client, organization):
    credential = CredentialFactory(organization=organization)
    with _broker_down() as delay:
        response = owner_client.post(check_url(credential), HTTP_HX_REQUEST="true")
    delay.assert_called_once_with(credential.pk)
    assert response.status_code == 200
    html = response.content.decode()
    assert "could not be started: the task queue is unreachable" in html
    assert 'hx-trigger="every 1s"' not in html  # nothing to wait for
    assert "The connection failed." not in html  # nothing was tried at HM
    credential.refresh_from_db()
    assert credential.last_check_ok is False
    assert credential.last_check_message == CHECK_NOT_STARTED


def test_button_without_javascript_shows_the_message(owner_client, organization):
    credential = CredentialFactory(organization=organization)
    with _broker_down():
        response = owner_client.post(check_url(credential), follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "could not be started: the task queue is unreachable" in html
    assert "Testing the connection in the background" not in html


def test_it_can_be_tried_again_once_the_broker_is_back(owner_client, organization):
    credential = CredentialFactory(organization=organization)
    with _broker_down():
        owner_client.post(check_url(credential), HTTP_HX_REQUEST="true")
    with mock.patch("clearance.tasks.test_connection.delay") as delay:
        html = owner_client.post(check_url(credential), HTTP_HX_REQUEST="true").content.decode()
    delay.assert_called_once_with(credential.pk)
    assert 'hx-trigger="every 1s"' in html


def test_admin_action_reports_the_queue_instead_of_failing(admin_client):
    credential = CredentialFactory(name="Fleet app")
    with _broker_down():
        response = admin_client.post(
            reverse("admin:clearance_credential_changelist"),
            {"action": "test_connection", "_selected_action": [credential.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert "Could not start the test for Fleet app: the task queue is unreachable" in (
        response.content.decode()
    )
    assert Credential.objects.get(pk=credential.pk).last_check_message == CHECK_NOT_STARTED


def test_admin_sync_now_with_the_queue_down_says_so(admin_client, organization):
    credential = CredentialFactory(organization=organization)
    with mock.patch("clearance.tasks.sync_credential.delay", side_effect=BROKER_DOWN):
        response = admin_client.post(
            reverse("admin:clearance_credential_changelist"),
            {"action": "sync_now", "_selected_action": [credential.pk]},
            follow=True,
        )
    assert response.status_code == 200
    html = response.content.decode()
    assert "The task queue is unreachable, so 1 of 1 could not be queued." in html
    assert "Sync queued" not in html
