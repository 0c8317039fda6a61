"""The same defect end to end: the simulator signs and posts real-shaped webhooks (no time of
the change) to our receiver on the live server, then a sync reads the simulator's changelog."""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings

from clearance.models import Clearance, ClearanceEvent, Credential, HMWork, WebhookDelivery
from clearance.services import defleet, onboarding, sending, sync, webhooks
from simulator import clock as sim_clock
from simulator import services as sim
from simulator import webhooks as sim_webhooks
from simulator.models import SimWebhookDelivery
from tests.clearance.lifecycle_helpers import ordinary_vin, vehicles
from tests.factories import CredentialFactory


@pytest.fixture
def sa_credential(simulator, organization, monkeypatch):
    """A service-account credential (legacy vehicle tokens) with webhooks from its app."""
    monkeypatch.setattr(sim_webhooks, "_enqueue", lambda pk: None)  # delivered by hand below
    app, keys = sim.create_app(f"SA {uuid.uuid4().hex[:6]}", approval_delay_seconds=5)
    credential = CredentialFactory(
        organization=organization,
        environment=Credential.Environment.SIMULATOR,
        auth_mode=Credential.AuthMode.SERVICE_ACCOUNT,
        client_id=keys.client_id,
        client_secret=keys.client_secret,
        service_account_key_id=keys.service_account_key_id,
        private_key=keys.service_account_private_key_pem,
        webhook_secret="hook-" + uuid.uuid4().hex,
    )
    url = f"{settings.SITE_URL}/webhooks/high-mobility/{credential.public_id}/"
    sim.set_webhook(app, url, credential.webhook_secret)
    return credential


def travel(delta):
    """Advance the simulator, post the webhooks that became due, apply them as the task would."""
    sim_clock.advance(delta)
    sim_webhooks.detect_changes()
    for delivery in SimWebhookDelivery.objects.filter(status="pending").order_by("pk"):
        assert sim_webhooks.deliver(delivery.pk)
    for credential_id in set(
        WebhookDelivery.objects.filter(processed_at__isnull=True).values_list(
            "credential_id", flat=True
        )
    ):
        webhooks.confirm_webhooks(credential_id)


def history(clearance):
    return list(
        ClearanceEvent.objects.filter(clearance=clearance)
        .order_by("pk")
        .values_list("from_status", "to_status", "source")
    )


def test_simulated_webhooks_then_sync_record_each_move_once(
    sa_credential, organization, queued_tasks
):
    cars = vehicles(organization, [ordinary_vin(7)], brand="sandbox")
    onboarding.queue_clearance_requests(cars, credential=sa_credential)
    sending.request_clearances(sa_credential.pk)
    travel(timedelta(seconds=6))
    clearance = Clearance.objects.get()
    assert clearance.status == "approved"
    # Confirmed with HM's list after the webhook: HM's own time of the change is known.
    assert clearance.hm_changed_at is not None
    assert ("vehicle_token_work", sa_credential.pk) in queued_tasks
    assert HMWork.objects.filter(clearance=clearance, kind="token_issue").exists()

    queued_tasks.clear()
    summary = sync.sync_clearances(sa_credential)
    assert summary.changes == []
    assert [t for t, *_ in queued_tasks if t != "request_clearances"] == []
    assert [(a, b) for a, b, _ in history(clearance)] == [
        ("", "queued"),
        ("queued", "pending"),
        ("pending", "approved"),
    ]

    (outcome,) = defleet.defleet(cars)
    assert outcome.ok
    travel(timedelta(seconds=6))
    clearance.refresh_from_db()
    assert clearance.status == "revoked"
    before = history(clearance)
    queued_tasks.clear()
    summary = sync.sync_clearances(sa_credential)
    assert summary.changes == []
    assert history(clearance) == before
    assert [t for t, *_ in queued_tasks if t != "request_clearances"] == []
