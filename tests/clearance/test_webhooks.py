"""The HM webhook receiver: signature, dedupe, fast answer, application in a task."""

import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from clearance.models import ClearanceEvent, WebhookDelivery
from clearance.services import webhooks
from tests.clearance.lifecycle_helpers import clearance_payload, post_webhook
from tests.factories import ClearanceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return Client(enforce_csrf_checks=True)  # HM has no CSRF token: the view must not need one


@pytest.fixture
def pending():
    return ClearanceFactory(status="pending", status_known_at=timezone.now() - timedelta(minutes=5))


def run_tasks(callbacks):
    """The on-commit callbacks queue Celery tasks; run what they would run, here."""
    for delivery in WebhookDelivery.objects.filter(processed_at__isnull=True).order_by("pk"):
        webhooks.process_webhook(delivery.pk)


def test_signed_webhook_is_stored_answered_and_applied(
    client, pending, django_capture_on_commit_callbacks
):
    vin = pending.vehicle.vin
    credential = pending.credential
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_webhook(client, credential, clearance_payload(vin, "approved"))
    assert response.status_code == 200
    assert len(callbacks) == 1  # the task is queued after commit, not run in the request
    pending.refresh_from_db()
    assert pending.status == "pending"  # nothing applied yet: answer first
    run_tasks(callbacks)
    pending.refresh_from_db()
    assert pending.status == "approved"
    delivery = WebhookDelivery.objects.get()
    assert delivery.processed_at is not None
    assert "applied" in delivery.result
    assert ClearanceEvent.objects.get(clearance=pending).source == "webhook"


@pytest.mark.parametrize(
    "signature",
    [False, "sha256=" + "0" * 64, "sha1=abc", "", "sha256=nothex"],
    ids=["missing", "wrong", "sha1", "empty", "garbage"],
)
def test_forged_webhook_is_refused_and_changes_nothing(client, pending, signature):
    payload = clearance_payload(pending.vehicle.vin, "approved")
    response = post_webhook(client, pending.credential, payload, signature=signature)
    assert response.status_code == 401
    assert not WebhookDelivery.objects.exists()
    pending.refresh_from_db()
    assert pending.status == "pending"


def test_signed_with_another_secret_is_refused(client, pending):
    payload = clearance_payload(pending.vehicle.vin, "approved")
    response = post_webhook(client, pending.credential, payload, secret="not-the-secret")
    assert response.status_code == 401
    assert not WebhookDelivery.objects.exists()


def test_credential_without_webhook_secret_refuses_everything(client, pending):
    credential = pending.credential
    payload = clearance_payload(pending.vehicle.vin, "approved")
    body_secret = credential.webhook_secret
    credential.webhook_secret = ""
    credential.save()
    response = post_webhook(client, credential, payload, secret=body_secret)
    assert response.status_code == 401


def test_unknown_credential_is_404(client, pending):
    response = client.post(
        f"/webhooks/high-mobility/{uuid.uuid4()}/", data=b"{}", content_type="application/json"
    )
    assert response.status_code == 404


def test_only_post(client, pending):
    assert client.get(f"/webhooks/high-mobility/{pending.credential.public_id}/").status_code == 405


def test_ping_answers_200(client, pending, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_webhook(client, pending.credential, {"event": {"type": "ping"}})
    assert response.status_code == 200
    assert response.json()["event"] == "ping"
    assert callbacks == []
    assert WebhookDelivery.objects.get().processed_at is not None


def test_duplicated_delivery_is_ignored(client, pending, django_capture_on_commit_callbacks):
    payload = clearance_payload(pending.vehicle.vin, "approved")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = post_webhook(client, pending.credential, payload, delivery="d-1")
        second = post_webhook(client, pending.credential, payload, delivery="d-1")
    assert first.status_code == second.status_code == 200
    assert second.json()["duplicate"] is True
    assert len(callbacks) == 1
    assert WebhookDelivery.objects.count() == 1
    run_tasks(callbacks)
    # The task itself running twice (at-least-once broker) is harmless too.
    assert webhooks.process_webhook(WebhookDelivery.objects.get().pk) == "already processed"
    assert ClearanceEvent.objects.filter(clearance=pending).count() == 1


def test_same_news_under_two_delivery_ids_applies_once(client, pending):
    payload = clearance_payload(pending.vehicle.vin, "approved")
    post_webhook(client, pending.credential, payload)
    post_webhook(client, pending.credential, payload)
    run_tasks(None)
    assert WebhookDelivery.objects.count() == 2
    assert ClearanceEvent.objects.filter(clearance=pending).count() == 1


def test_reordered_webhooks_are_harmless(client, pending):
    vin = pending.vehicle.vin
    credential = pending.credential
    # HM sent approved then revoking; they arrive the other way round. HM's webhooks carry no
    # time, so the graph decides: "revoking" cannot follow "pending" and is refused (kept as
    # such on the delivery), "approved" applies; the next sync brings HM's current status.
    post_webhook(client, credential, clearance_payload(vin, "revoking"))
    post_webhook(client, credential, clearance_payload(vin, "approved"))
    run_tasks(None)
    pending.refresh_from_db()
    assert pending.status == "approved"
    refused = WebhookDelivery.objects.get(payload__event__action="revoking")
    assert refused.result.startswith(f"{vin}: forbidden pending -> revoking")
    # Then "revoked" arrives and is applied; a late repeat of "approved" is not.
    post_webhook(client, credential, clearance_payload(vin, "revoked"))
    post_webhook(client, credential, clearance_payload(vin, "approved"))
    run_tasks(None)
    pending.refresh_from_db()
    assert pending.status == "revoked"
    assert list(
        ClearanceEvent.objects.filter(clearance=pending).values_list("to_status", flat=True)
    ) == ["approved", "revoked"]


def test_undated_reordered_webhooks_use_receive_order_and_the_graph(client, pending):
    vin = pending.vehicle.vin
    credential = pending.credential
    post_webhook(client, credential, clearance_payload(vin, "approved"))
    post_webhook(client, credential, clearance_payload(vin, "revoking"))
    # Processed newest first: the older "approved" was received before the current status.
    for delivery in WebhookDelivery.objects.order_by("-pk"):
        webhooks.process_webhook(delivery.pk)
    pending.refresh_from_db()
    assert pending.status == "revoking"


def test_webhook_for_unknown_vin_or_other_credential_changes_nothing(client, pending):
    other = ClearanceFactory(status="pending")
    post_webhook(client, pending.credential, clearance_payload(other.vehicle.vin, "approved"))
    post_webhook(client, pending.credential, clearance_payload("WVWZZZ1KZ99999999", "approved"))
    run_tasks(None)
    other.refresh_from_db()
    assert other.status == "pending"
    assert all(d.result.startswith("ignored") for d in WebhookDelivery.objects.all()), list(
        WebhookDelivery.objects.values_list("result", flat=True)
    )


def test_unknown_status_by_webhook_is_stored_raw(client, pending):
    post_webhook(client, pending.credential, clearance_payload(pending.vehicle.vin, "paused"))
    run_tasks(None)
    pending.refresh_from_db()
    assert pending.status == "paused"


def test_not_json_is_400_after_a_good_signature(client, pending):
    response = post_webhook(client, pending.credential, b"not json")
    assert response.status_code == 400


def test_lost_webhook_task_is_reapplied_by_the_beat(pending):
    delivery = WebhookDelivery.objects.create(
        credential=pending.credential,
        delivery_id="lost-1",
        event="fleet_clearance_changed",
        payload=clearance_payload(pending.vehicle.vin, "approved"),
    )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        received_at=timezone.now() - timedelta(minutes=5)
    )
    assert webhooks.unprocessed_webhooks() == [delivery.pk]


def test_a_burst_is_drained_in_receive_order(client, pending):
    vin = pending.vehicle.vin
    post_webhook(client, pending.credential, clearance_payload(vin, "approved"))
    post_webhook(client, pending.credential, clearance_payload(vin, "revoking"))
    post_webhook(client, pending.credential, clearance_payload(vin, "revoked"))
    assert webhooks.process_pending_webhooks() == 3
    assert webhooks.process_pending_webhooks() == 0
    pending.refresh_from_db()
    assert pending.status == "revoked"
    assert not WebhookDelivery.objects.filter(processed_at__isnull=True).exists()
