"""Outgoing webhooks to a local receiver: signed, versioned bodies, retries with backoff, giving up,
disabling a failing endpoint, redeliveries, test events, and the address checks at send time."""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from clearance import state
from durable.models import WorkState
from notifications import delivery, outgoing, signing, webhook_sender
from notifications.models import (
    EventDelivery,
    OutgoingEmail,
    OutgoingEvent,
    RuleKind,
)
from organizations.models import Role
from tests.factories import ClearanceFactory, MembershipFactory
from tests.notifications.conftest import make_endpoint, make_rule
from vehicles import events as fleet_events

pytestmark = pytest.mark.django_db


def send_all():
    webhook_sender.send_due(budget_seconds=20)


def travel_to_next_attempt():
    """Make every pending delivery due now (the retry delay has passed)."""
    EventDelivery.objects.filter(state=WorkState.PENDING).update(next_attempt_at=timezone.now())


def reject(clearance, reason="The owner did not confirm."):
    state.apply_status(clearance, "rejected", at=None, source="webhook", description=reason)


@pytest.fixture
def clearance(organization):
    return ClearanceFactory(
        vehicle__organization=organization,
        vehicle__vin="WVWZZZ1KZAW000001",
        vehicle__tags={"depot": "berlin"},
        status="pending",
    )


def test_a_clearance_change_arrives_signed_with_a_versioned_body(organization, clearance, receiver):
    endpoint = make_endpoint(organization, receiver.url())
    reject(clearance)
    send_all()
    (got,) = receiver.received
    body = json.loads(got.body)
    assert body["type"] == "clearance.changed" and body["version"] == 1
    assert body["organization"]["slug"] == organization.slug
    assert body["data"]["vehicle"]["vin"] == "WVWZZZ1KZAW000001"
    assert body["data"]["vehicle"]["tags"] == {"depot": "berlin"}
    assert body["data"]["vehicle"]["url"].endswith(f"/fleet/{clearance.vehicle.public_id}/")
    assert body["data"]["clearance"] == {
        "from": "pending",
        "to": "rejected",
        "changed_at": body["data"]["clearance"]["changed_at"],
        "source": "webhook",
        "reason": "The owner did not confirm.",
    }
    assert got.header("FleetPortal-Event-Id") == body["id"]
    assert got.header("FleetPortal-Event-Type") == "clearance.changed"
    assert got.header("FleetPortal-Delivery-Attempt") == "1"
    assert got.header("Content-Type") == "application/json"
    assert signing.verify(endpoint.secret, got.body, got.header("FleetPortal-Signature"))
    delivery = EventDelivery.objects.get()
    assert (delivery.status, delivery.last_status_code, delivery.attempts) == ("delivered", 200, 1)


def test_a_defleet_is_also_told_as_vehicle_defleeted(organization, receiver):
    make_endpoint(organization, receiver.url())
    approved = ClearanceFactory(vehicle__organization=organization, status="approved")
    state.apply_status(approved, "revoking", at=None, source="user")
    send_all()
    types = sorted(json.loads(r.body)["type"] for r in receiver.received)
    assert types == ["clearance.changed", "vehicle.defleeted"]


def test_only_the_event_types_an_endpoint_chose(organization, clearance, receiver):
    make_endpoint(organization, receiver.url(), events=[outgoing.ALERT_FIRED])
    reject(clearance)
    assert not EventDelivery.objects.exists()
    make_rule(organization, RuleKind.CLEARANCE_REJECTED)
    state.apply_status(clearance, "queued", at=None, source="user")
    state.apply_status(clearance, "pending", at=None, source="api")
    reject(clearance)
    send_all()
    (got,) = receiver.received
    body = json.loads(got.body)
    assert body["type"] == "alert.fired"
    assert body["data"]["alert"]["title"] == "Clearance rejected"
    assert body["data"]["alert"]["rule"]["kind"] == "clearance_rejected"
    assert body["data"]["vehicle"]["vin"] == clearance.vehicle.vin


def test_a_finished_import_is_told(organization, receiver):
    make_endpoint(organization, receiver.url())
    fleet_events.publish(
        [
            fleet_events.ImportFinished(
                organization_id=organization.pk,
                import_id="1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed",
                file_name="fleet.csv",
                status="done",
                finished_at=timezone.now(),
                counts={"total": 10, "created": 9, "errors": 1},
            )
        ]
    )
    send_all()
    (got,) = receiver.received
    data = json.loads(got.body)["data"]["import"]
    assert (data["file_name"], data["status"], data["created"], data["errors"]) == (
        "fleet.csv",
        "done",
        9,
        1,
    )


def test_a_failing_receiver_is_retried_with_backoff_then_delivered(
    organization, clearance, receiver
):
    make_endpoint(organization, receiver.url())
    receiver.plan.fail_first = 2
    reject(clearance)
    send_all()
    delivery = EventDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.last_error == "The receiver answered HTTP 500."
    assert delivery.last_response == "receiver failed on purpose"
    assert delivery.next_attempt_at > timezone.now()
    assert delivery.endpoint.failing_since is not None
    send_all()  # not due yet: nothing sent
    assert len(receiver.received) == 1
    for attempt in (2, 3):
        travel_to_next_attempt()
        send_all()
        assert receiver.received[-1].header("FleetPortal-Delivery-Attempt") == str(attempt)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    bodies = {r.body for r in receiver.received}
    assert len(bodies) == 1  # the same event, byte for byte, signed anew each time
    assert len({r.header("FleetPortal-Signature") for r in receiver.received}) >= 1
    delivery.endpoint.refresh_from_db()
    assert delivery.endpoint.failing_since is None


def test_the_backoff_grows_exponentially(organization, clearance, settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 30
    settings.DELIVERY_RETRY_MAX_SECONDS = 3600
    make_endpoint(organization, "https://hooks.example.test/")
    reject(clearance)
    row = EventDelivery.objects.get()
    for attempts, (shortest, longest) in {1: (15, 30), 4: (120, 240), 20: (1800, 3600)}.items():
        row.attempts = attempts
        now = timezone.now()
        delivery.retry(EventDelivery, row, "The receiver answered HTTP 503.", now)
        row.refresh_from_db()
        waits = (row.next_attempt_at - now).total_seconds()
        assert shortest - 1 <= waits <= longest + 1, (attempts, waits)
        assert (row.status, row.last_error) == ("pending", "The receiver answered HTTP 503.")


def test_after_24_hours_of_failures_the_delivery_fails_and_the_endpoint_is_disabled(
    organization, clearance, receiver, owner_user
):
    manager = MembershipFactory(organization=organization, role=Role.MANAGER).user
    endpoint = make_endpoint(organization, receiver.url())
    receiver.plan.status = 503
    reject(clearance)
    send_all()
    day_ago = timezone.now() - timedelta(hours=24, minutes=1)
    EventDelivery.objects.update(created_at=day_ago)
    endpoint.failing_since = day_ago
    endpoint.save()
    other = ClearanceFactory(vehicle__organization=organization, status="pending")
    reject(other)  # a second, fresh delivery, waiting
    travel_to_next_attempt()
    send_all()
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert "Every delivery failed for 24 hours" in endpoint.disabled_reason
    states = list(EventDelivery.objects.order_by("pk").values_list("state", flat=True))
    assert states == ["failed", "failed"]
    words = list(EventDelivery.objects.order_by("pk").values_list("last_error", flat=True))
    assert words == [
        "The receiver answered HTTP 503. Not delivered after 24 hours of retries.",
        "The endpoint was disabled.",
    ]
    emails = OutgoingEmail.objects.filter(kind=OutgoingEmail.Kind.ENDPOINT_DISABLED)
    assert [e.user for e in emails] == [owner_user]  # the owners, not the manager
    assert manager not in [e.user for e in emails]


def test_redeliver_sends_the_same_event_id_again(organization, clearance, receiver):
    make_endpoint(organization, receiver.url())
    reject(clearance)
    send_all()
    first = EventDelivery.objects.get()
    again = outgoing.redeliver(first)
    send_all()
    assert again.pk != first.pk
    ids = [r.header("FleetPortal-Event-Id") for r in receiver.received]
    assert ids == [str(first.event.public_id)] * 2


def test_a_test_event_goes_to_its_endpoint_only(organization, receiver):
    endpoint = make_endpoint(organization, receiver.url(), events=[outgoing.IMPORT_FINISHED])
    make_endpoint(organization, receiver.url("/other"))
    outgoing.test_event(endpoint)
    send_all()
    (got,) = receiver.received
    assert got.path == "/hooks"
    assert json.loads(got.body)["type"] == "webhook.test"


def test_redirects_are_not_followed(organization, clearance, receiver):
    make_endpoint(organization, receiver.url())
    receiver.plan.redirect_to = receiver.url("/elsewhere")
    reject(clearance)
    send_all()
    assert [r.path for r in receiver.received] == ["/hooks"]
    delivery = EventDelivery.objects.get()
    assert (delivery.status, delivery.last_status_code) == ("pending", 302)


def test_a_private_address_is_refused_at_send_time(organization, clearance, receiver, settings):
    make_endpoint(organization, receiver.url())
    settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE = False
    reject(clearance)
    send_all()
    assert receiver.received == []
    delivery = EventDelivery.objects.get()
    assert delivery.status == "failed"
    assert "127.0.0.1 is a loopback address" in delivery.last_error


@pytest.fixture
def dns(monkeypatch):
    """Host names resolved as the test says; everything else as usual."""
    answers: dict[str, str] = {}
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return answers


def test_a_host_that_resolves_elsewhere_after_saving_is_checked_again(
    organization, clearance, receiver, settings, dns
):
    """DNS rebinding: public when the endpoint was saved, this machine when the event is sent."""
    settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE = False
    dns["hooks.example.test"] = "93.184.216.34"
    make_endpoint(organization, f"http://hooks.example.test:{receiver.port}/hooks")
    dns["hooks.example.test"] = "127.0.0.1"
    reject(clearance)
    send_all()
    assert receiver.received == []
    assert "hooks.example.test resolves to 127.0.0.1" in EventDelivery.objects.get().last_error


def test_the_connection_goes_to_the_checked_address_with_the_host_name(
    organization, clearance, receiver, dns
):
    dns["hooks.example.test"] = "127.0.0.1"
    make_endpoint(organization, f"http://hooks.example.test:{receiver.port}/hooks")
    reject(clearance)
    send_all()
    (got,) = receiver.received
    assert got.header("Host") == f"hooks.example.test:{receiver.port}"


def test_metadata_addresses_are_refused_even_where_private_ones_are_allowed(
    organization, clearance, dns
):
    dns["metadata.example.test"] = "169.254.169.254"
    make_endpoint(organization, "http://metadata.example.test/latest/meta-data/")
    reject(clearance)
    send_all()
    delivery = EventDelivery.objects.get()
    assert delivery.status == "failed"
    assert "169.254.169.254 is a cloud metadata address" in delivery.last_error


def test_no_endpoint_no_event_stored(organization, clearance):
    reject(clearance)
    assert not OutgoingEvent.objects.exists()


def test_a_hostile_answer_is_kept_for_the_log_in_words_the_database_can_store(
    organization, clearance, receiver
):
    make_endpoint(organization, receiver.url())
    receiver.plan.status = 500
    receiver.plan.content_type = "text/plain; charset=no-such-charset"
    receiver.plan.answer_body = b"boom\x00\xff" + b"x" * 100_000
    reject(clearance)
    send_all()
    delivery = EventDelivery.objects.get()
    assert delivery.last_status_code == 500
    assert delivery.last_response.startswith("boom\ufffd\ufffd")
    assert len(delivery.last_response) == 1000


def test_a_sender_asked_to_stop_leaves_the_rest_due(organization, receiver):
    make_endpoint(organization, receiver.url())
    for _ in range(3):
        reject(ClearanceFactory(vehicle__organization=organization, status="pending"))
    asked = iter([False, True])
    done, more = webhook_sender.send_due(budget_seconds=20, stop=lambda: next(asked))
    assert (done, more) == (1, True)
    assert EventDelivery.objects.filter(state=WorkState.PENDING).count() == 2
