"""The HM webhook receiver: signature, dedupe by delivery id only, a fast answer, and
confirmation with HM (the simulator over real HTTP) before any clearance moves."""

import random
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clearance import tasks
from clearance.models import Clearance, ClearanceEvent, WebhookDelivery
from clearance.services import onboarding, sending, webhooks
from durable import work
from simulator import clock as sim_clock
from simulator import services as sim
from tests.clearance.lifecycle_helpers import (
    clearance_payload,
    ordinary_vin,
    post_webhook,
    vehicles,
    wire,
)
from tests.factories import ClearanceFactory


@pytest.fixture
def woken(queued_tasks):
    """The confirmation tasks the receiver queued (recorded after commit, not sent)."""

    class Woken:
        def __iter__(self):
            return iter([args for name, *args in queued_tasks if name == "confirm_webhooks"])

        def __eq__(self, other):
            return list(self) == other

    return Woken()


@pytest.fixture
def client():
    return Client(enforce_csrf_checks=True)  # HM has no CSRF token: the view must not need one


@pytest.fixture
def pending(db):
    """A clearance without an HM behind it: for what is refused before HM is asked."""
    return ClearanceFactory(status="pending", status_known_at=timezone.now() - timedelta(minutes=5))


@pytest.fixture
def at_hm(simulator, organization):
    """(credential, app, clearances): two VINs sent to the simulator, pending there and here."""
    credential, app = wire(organization, webhooks=False)
    cars = vehicles(organization, [ordinary_vin(1), ordinary_vin(2)], brand="sandbox")
    onboarding.queue_clearance_requests(cars, credential=credential)
    sending.request_clearances(credential.pk)
    rows = list(Clearance.objects.filter(credential=credential).order_by("vehicle__vin"))
    assert {r.status for r in rows} == {"pending"}
    return credential, app, rows


def confirm(credential):
    return webhooks.confirm_webhooks(credential.pk)


def status_of(row):
    row.refresh_from_db()
    return row.status


def test_signed_webhook_is_stored_answered_then_confirmed_with_hm(client, at_hm, woken):
    credential, _app, (row, _) = at_hm
    sim_clock.advance(timedelta(seconds=10))  # HM approves
    response = post_webhook(client, credential, clearance_payload(row.vehicle.vin, "approved"))
    assert response.status_code == 200
    # Confirmations are scheduled: at once (after a quiet spell) and for the window's end;
    # nothing is applied in the request.
    assert woken == [[credential.pk], [credential.pk]]
    assert status_of(row) == "pending"  # nothing applied in the request
    summary = confirm(credential)
    assert (summary.deliveries, summary.hm_calls) == (1, 1)
    assert status_of(row) == "approved"
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.processed_at is not None) == ("done", True)
    assert delivery.result == f"{row.vehicle.vin}: confirmed, High Mobility says approved"
    event = ClearanceEvent.objects.filter(clearance=row).latest("at")
    assert (event.to_status, event.source) == ("approved", "webhook")


def test_a_replayed_signed_body_with_a_new_delivery_id_moves_nothing(client, at_hm):
    """HM's signature covers only the body: an attacker can replay it under any delivery id.
    The replay only makes us ask HM, and HM says the vehicle is still approved."""
    credential, _app, (row, _) = at_hm
    sim_clock.advance(timedelta(seconds=10))
    post_webhook(client, credential, clearance_payload(row.vehicle.vin, "approved"))
    confirm(credential)
    assert status_of(row) == "approved"
    revoked = clearance_payload(row.vehicle.vin, "revoked")
    post_webhook(client, credential, revoked, delivery=str(uuid.uuid4()))
    post_webhook(client, credential, revoked, delivery=str(uuid.uuid4()))
    confirm(credential)
    assert status_of(row) == "approved"
    assert WebhookDelivery.objects.filter(result__endswith="says approved").count() == 3


def test_shuffled_repeated_webhooks_end_where_hm_is(client, at_hm):
    credential, app, rows = at_hm
    sim_clock.advance(timedelta(seconds=10))
    sim.delete_clearance(app, rows[0].vehicle.vin)  # approved -> revoking at HM
    sim_clock.advance(timedelta(seconds=10))  # -> revoked
    news = [
        clearance_payload(row.vehicle.vin, status)
        for row in rows
        for status in ("approved", "revoking", "revoked")
        if row is rows[0] or status == "approved"
    ] * 3
    random.Random(7).shuffle(news)
    for payload in news:
        post_webhook(client, credential, payload)
    summary = confirm(credential)
    assert (summary.deliveries, summary.hm_calls) == (len(news), 1)
    assert [status_of(r) for r in rows] == ["revoked", "approved"]
    # Each move recorded once, along the graph.
    assert list(
        ClearanceEvent.objects.filter(clearance=rows[0]).values_list("to_status", flat=True)
    ) == ["queued", "pending", "approved", "revoking", "revoked"]


def test_the_webhooks_words_are_kept_for_the_move_it_announced(client, at_hm):
    credential, app, (row, _) = at_hm
    sim_clock.advance(timedelta(seconds=10))
    sim.revoke_as_carmaker(app, row.vehicle.vin)
    payload = clearance_payload(row.vehicle.vin, "revoked")
    payload["event"]["detail"] = "The owner withdrew consent in the carmaker's app."
    post_webhook(client, credential, payload)
    confirm(credential)
    assert status_of(row) == "revoked"
    event = ClearanceEvent.objects.filter(clearance=row, to_status="revoked").get()
    assert event.detail == "The owner withdrew consent in the carmaker's app."


def test_without_a_delivery_id_identical_bodies_are_both_news(client, at_hm):
    credential, _app, (row, _) = at_hm
    payload = clearance_payload(row.vehicle.vin, "approved")
    first = post_webhook(client, credential, payload)
    second = post_webhook(client, credential, payload)
    assert first.json()["duplicate"] is second.json()["duplicate"] is False
    assert WebhookDelivery.objects.count() == 2


def test_a_repeated_delivery_id_is_stored_once(client, at_hm):
    credential, _app, (row, _) = at_hm
    payload = clearance_payload(row.vehicle.vin, "approved")
    post_webhook(client, credential, payload, delivery="d-1")
    second = post_webhook(client, credential, payload, delivery="d-1")
    assert second.json()["duplicate"] is True
    assert WebhookDelivery.objects.count() == 1
    confirm(credential)
    # The task running twice (an at-least-once broker) finds nothing left.
    assert confirm(credential).deliveries == 0


def test_a_burst_is_one_task_and_one_hm_call(client, at_hm, woken, settings):
    settings.WEBHOOK_CONFIRM_DELAY_SECONDS = 60  # the whole burst inside one debounce window
    credential, _app, rows = at_hm
    for _ in range(20):
        for row in rows:
            post_webhook(client, credential, clearance_payload(row.vehicle.vin, "pending"))
    # The first webhook after a quiet spell at once, the rest for the window's end: no more.
    assert woken == [[credential.pk], [credential.pk]]
    summary = confirm(credential)
    assert (summary.deliveries, summary.hm_calls, summary.more) == (40, 1, False)


def test_hm_down_keeps_the_deliveries_and_retries_them(client, at_hm):
    credential, app, (row, _) = at_hm
    sim_clock.advance(timedelta(seconds=10))
    app.next_fault_status = 503
    app.next_fault_count = 1
    app.save()
    post_webhook(client, credential, clearance_payload(row.vehicle.vin, "approved"))
    summary = confirm(credential)
    assert summary.retrying == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("pending", 1)
    assert delivery.last_error.startswith("High Mobility")
    assert status_of(row) == "pending"
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    confirm(credential)
    assert status_of(row) == "approved"


def test_webhook_for_unknown_vin_or_other_credential_changes_nothing(client, at_hm):
    credential, _app, _rows = at_hm
    other = ClearanceFactory(status="pending")
    post_webhook(client, credential, clearance_payload(other.vehicle.vin, "approved"))
    post_webhook(client, credential, clearance_payload("WVWZZZ1KZ99999999", "approved"))
    post_webhook(client, credential, {"event": {"type": "something_else"}})
    summary = confirm(credential)
    assert summary.hm_calls == 0  # nothing of ours named: HM is not asked
    assert status_of(other) == "pending"
    assert all(d.result.startswith("ignored") for d in WebhookDelivery.objects.all()), list(
        WebhookDelivery.objects.values_list("result", flat=True)
    )


def test_the_reconciler_wakes_a_confirmation_whose_message_was_lost(at_hm, monkeypatch):
    credential, _app, (row, _) = at_hm
    webhooks.record_webhook(
        credential,
        clearance_payload(row.vehicle.vin, "approved"),
        delivery_id="lost-1",
        event="fleet_clearance_changed",
    )
    woken = []
    monkeypatch.setattr(tasks.confirm_webhooks, "delay", woken.append)
    assert work.reconcile()["clearance.webhooks"] == 1
    assert woken == [credential.pk]


def test_confirming_costs_the_same_however_many_deliveries_were_ever_stored(client, at_hm):
    credential, _app, (row, _) = at_hm
    post_webhook(client, credential, clearance_payload(row.vehicle.vin, "pending"))
    confirm(credential)  # the first one also fetches the app token
    counts = []
    for stored in (10, 500):
        WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(
                    credential=credential,
                    delivery_id=f"old-{stored}-{i}",
                    event="fleet_clearance_changed",
                    payload=clearance_payload(row.vehicle.vin, "pending"),
                    state="done",
                    processed_at=timezone.now(),
                )
                for i in range(stored)
            ]
        )
        post_webhook(client, credential, clearance_payload(row.vehicle.vin, "pending"))
        with CaptureQueriesContext(connection) as ctx:
            confirm(credential)
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1], counts


def test_old_finished_deliveries_are_pruned(at_hm, settings):
    credential, _app, _rows = at_hm
    settings.WEBHOOK_DELIVERY_RETENTION_DAYS = 7
    for name, state, age in (
        ("old-done", "done", 8),
        ("new-done", "done", 1),
        ("old-open", "pending", 8),
    ):
        delivery = WebhookDelivery.objects.create(
            credential=credential, delivery_id=name, event="x", payload={}, state=state
        )
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            received_at=timezone.now() - timedelta(days=age)
        )
    assert webhooks.prune_deliveries() == 1
    assert set(WebhookDelivery.objects.values_list("delivery_id", flat=True)) == {
        "new-done",
        "old-open",
    }


def test_broker_down_the_webhook_is_stored_and_answered_200(client, pending, monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.confirm_webhooks, "apply_async", down)
    payload = clearance_payload(pending.vehicle.vin, "approved")
    response = post_webhook(client, pending.credential, payload)
    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "pending"  # the reconciler wakes its confirmation
    assert work.due_keys(WebhookDelivery.objects.all(), "credential_id") == [pending.credential_id]


def test_database_down_is_503_so_hm_delivers_again(client, pending, monkeypatch):
    from django.db import OperationalError

    def down(*args, **kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(webhooks, "_insert_delivery", down)
    payload = clearance_payload(pending.vehicle.vin, "approved")
    response = post_webhook(client, pending.credential, payload)
    assert response.status_code == 503
    assert "try again" in response.json()["error"]


# --- Refused before anything is stored (no HM needed) ---------------------------------------------
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
    assert status_of(pending) == "pending"


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


def test_ping_answers_200_and_schedules_nothing(
    client, pending, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_webhook(client, pending.credential, {"event": {"type": "ping"}})
    assert response.status_code == 200
    assert response.json()["event"] == "ping"
    assert callbacks == []
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.processed_at is not None) == ("done", True)


def test_not_json_is_400_after_a_good_signature(client, pending):
    response = post_webhook(client, pending.credential, b"not json")
    assert response.status_code == 400


@pytest.mark.django_db
def test_the_first_webhook_after_a_quiet_spell_is_confirmed_at_once_the_rest_per_window(
    monkeypatch, settings
):
    """After a quiet spell the window's first webhook wakes a confirmation at once, and one for
    the window's end (it claims the rest of the window); while a burst goes on, only the
    window's end: one HM call per window."""
    settings.WEBHOOK_CONFIRM_DELAY_SECONDS = 30
    now = [3003.0]  # window 100: 3000 to 3030
    monkeypatch.setattr(webhooks, "_clock", lambda: now[0])
    webhooks._scheduled.clear()
    credential = ClearanceFactory().credential
    countdowns = []
    monkeypatch.setattr(
        tasks.confirm_webhooks,
        "apply_async_on_commit",
        lambda args, countdown=None, **kw: countdowns.append((args, countdown)),
    )
    grace = webhooks.WINDOW_GRACE_SECONDS
    webhooks.schedule_confirmation(credential.public_id, credential.pk)
    webhooks.schedule_confirmation(credential.public_id, credential.pk)
    assert countdowns == [((credential.pk,), 0), ((credential.pk,), 27 + grace)]
    now[0] = 3031.0  # the burst goes on into window 101: no wake at once
    webhooks.schedule_confirmation(credential.public_id, credential.pk)
    assert countdowns[2:] == [((credential.pk,), 29 + grace)]
