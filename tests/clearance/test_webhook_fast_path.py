"""The webhook receiver's fast path: one statement per webhook (the credential remembered, no
health-check query, no page middleware), one confirmation per credential per debounce window,
and nothing weakened by any of it (a replaced secret, a deleted credential, a lost connection)."""

import time
import uuid
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from clearance import tasks, webhook_credentials
from clearance.models import Credential, WebhookDelivery
from clearance.services import webhooks
from tests.clearance.lifecycle_helpers import clearance_payload, post_webhook
from tests.factories import ClearanceFactory

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit, as in production


@pytest.fixture
def client():
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def pending(db):
    return ClearanceFactory(status="pending")


@pytest.fixture
def woken(monkeypatch):
    """The confirmations the receiver scheduled: (credential pk, countdown) each."""
    calls = []

    def record(args=(), kwargs=None, *, countdown=None, **options):
        calls.append((*args, countdown))

    monkeypatch.setattr(tasks.confirm_webhooks, "apply_async_on_commit", record)
    return calls


def payload(clearance):
    return clearance_payload(clearance.vehicle.vin, "approved")


def test_a_webhook_for_a_known_credential_is_one_insert(client, pending):
    post_webhook(client, pending.credential, payload(pending))
    with CaptureQueriesContext(connection) as ctx:
        response = post_webhook(client, pending.credential, payload(pending))
    assert response.status_code == 200
    assert [q["sql"].split()[0] for q in ctx.captured_queries] == ["INSERT"]
    assert WebhookDelivery.objects.count() == 2


def test_the_insert_writes_what_the_model_would(pending):
    assert webhooks.record_webhook(
        pending.credential, {"a": [1]}, delivery_id="raw", event="fleet_clearance_changed"
    )
    orm = WebhookDelivery.objects.create(
        credential=pending.credential,
        delivery_id="orm",
        event="fleet_clearance_changed",
        payload={"a": [1]},
    )
    orm.refresh_from_db()
    raw = WebhookDelivery.objects.get(delivery_id="raw")
    times = {"received_at", "next_attempt_at", "created_at", "updated_at"}
    for field in WebhookDelivery._meta.concrete_fields:
        name = field.attname
        if name in times:
            assert getattr(raw, name) is not None and getattr(raw, name) <= getattr(orm, name)
        elif name not in ("id", "delivery_id"):
            assert getattr(raw, name) == getattr(orm, name), name


def test_the_webhook_skips_the_page_middleware_and_pages_keep_it(client, pending):
    response = post_webhook(client, pending.credential, payload(pending))
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware still runs
    assert "Content-Security-Policy" not in response  # the page middleware does not
    assert not response.cookies
    page = client.get("/login/")
    assert "Content-Security-Policy" in page and page["X-Frame-Options"] == "DENY"
    # A path the lean URLconf does not match goes through the whole stack, as before.
    other = client.post(
        "/webhooks/high-mobility/not-a-credential/", data=b"{}", content_type="application/json"
    )
    assert other.status_code == 404 and "Content-Security-Policy" in other


def test_a_secret_replaced_in_another_process_is_accepted_at_once(client, pending):
    credential = pending.credential
    post_webhook(client, credential, payload(pending))  # remembered with the old secret
    # Another process replaces it: no signal reaches this one.
    Credential.objects.filter(pk=credential.pk).update(webhook_secret="the-new-secret")
    fresh = post_webhook(client, credential, payload(pending), secret="the-new-secret")
    assert fresh.status_code == 200
    old = post_webhook(client, credential, payload(pending), secret=credential.webhook_secret)
    assert old.status_code == 401
    assert WebhookDelivery.objects.count() == 2


def test_a_secret_replaced_here_refuses_the_old_one_at_once(client, pending):
    credential = pending.credential
    old_secret = credential.webhook_secret
    post_webhook(client, credential, payload(pending))
    credential.webhook_secret = "the-new-secret"
    credential.save()
    assert post_webhook(client, credential, payload(pending), secret=old_secret).status_code == 401
    assert WebhookDelivery.objects.count() == 1


def test_a_credential_deleted_in_another_process_is_404(client, pending):
    # This process still remembers a credential the database no longer has.
    gone = SimpleNamespace(public_id=uuid.uuid4(), webhook_secret="remembered-secret")
    missing_pk = Credential.objects.order_by("-pk").values_list("pk", flat=True)[0] + 1000
    webhook_credentials._known[gone.public_id] = (
        webhook_credentials.WebhookCredential(
            missing_pk, gone.public_id, gone.webhook_secret, True
        ),
        time.monotonic() + 60,
    )
    response = post_webhook(client, gone, payload(pending))
    assert response.status_code == 404
    assert not WebhookDelivery.objects.exists()
    assert gone.public_id not in webhook_credentials._known


def test_the_secret_is_never_in_a_repr(pending):
    remembered = webhook_credentials.lookup(pending.credential.public_id)
    assert remembered is not None and remembered.webhook_secret == pending.credential.webhook_secret
    assert pending.credential.webhook_secret not in repr(remembered)


class _DroppedByTheServer:
    """A kept connection the database server closed meanwhile: its next statement fails."""

    def cursor(self, *args, **kwargs):
        raise connection.Database.OperationalError("server closed the connection unexpectedly")

    def close(self):
        pass


def test_a_kept_connection_the_server_dropped_costs_a_retry_not_the_webhook(client, pending):
    post_webhook(client, pending.credential, payload(pending))
    connection.ensure_connection()
    connection.close_at = None  # kept between requests, as with CONN_MAX_AGE
    connection.connection = _DroppedByTheServer()
    response = post_webhook(client, pending.credential, payload(pending))
    assert response.status_code == 200 and response.json()["duplicate"] is False
    assert WebhookDelivery.objects.count() == 2
    connection.close()


def test_one_confirmation_per_credential_per_window(client, pending, woken, settings, monkeypatch):
    settings.WEBHOOK_CONFIRM_DELAY_SECONDS = 10
    now = [1003.0]  # window 100: 1000 to 1010
    monkeypatch.setattr(webhooks, "_clock", lambda: now[0])
    pk = pending.credential.pk
    for _ in range(5):
        post_webhook(client, pending.credential, payload(pending))
    # After a quiet spell: once at once, and once for just after the window ends (it finds
    # every delivery stored during the window).
    assert woken == [(pk, 0), (pk, 7 + webhooks.WINDOW_GRACE_SECONDS)]
    # Another web process in the same window finds the marker in the cache: no further task.
    webhooks._scheduled.clear()
    now[0] = 1009.0
    post_webhook(client, pending.credential, payload(pending))
    assert len(woken) == 2
    now[0] = 1010.5  # the next window, the burst going on: only for the window's end
    post_webhook(client, pending.credential, payload(pending))
    assert woken[2:] == [(pk, 9.5 + webhooks.WINDOW_GRACE_SECONDS)]
    assert WebhookDelivery.objects.count() == 7
