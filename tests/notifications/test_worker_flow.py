"""Alerts through the real parts: a Celery worker process, the simulator over HTTP driving
clearance changes and telemetry, a local receiver for the signed webhooks (failing on purpose),
and the worker's emails read back from its file backend. Every rule kind fires once."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clearance.models import Clearance
from clearance.services import defleet, onboarding, sync
from durable import work
from durable.models import WorkState
from imports.models import ImportJob
from notifications import outgoing, signing, tasks
from notifications.models import (
    Alert,
    EventDelivery,
    Notification,
    OutgoingEmail,
    OutgoingEvent,
    RuleKind,
)
from organizations.middleware import SESSION_KEY
from organizations.models import Role
from simulator import clock as sim_clock
from simulator import services as sim
from simulator import webhooks as sim_webhooks
from simulator.vehicle_data import profile, vehicle_state
from telemetry.tasks import pull_vehicle_telemetry
from tests.clearance.lifecycle_helpers import (
    SEED_ODOMETER,
    SEED_PENDING,
    ordinary_vin,
    vehicles,
    wire,
)
from tests.conftest import wait_for
from tests.factories import MembershipFactory, OrganizationFactory
from tests.imports.helpers import fleet_csv
from tests.notifications import mailbox
from tests.notifications.conftest import make_endpoint, make_rule
from vehicles.models import Vehicle

pytestmark = pytest.mark.slow


@pytest.fixture
def worker(transactional_db, celery_worker, live_server):
    sim_clock.reset()
    mailbox.empty()
    yield celery_worker
    sim_clock.reset()


def travel(delta):
    sim_clock.advance(delta)
    sim_webhooks.detect_changes()


def status_of(vehicle):
    return Clearance.objects.filter(vehicle=vehicle).values_list("status", flat=True).first()


def alerts_of(rule):
    return Alert.objects.filter(rule=rule)


def fleet(org_name="Alerting fleet"):
    org = OrganizationFactory(name=org_name)
    owner = MembershipFactory(organization=org, role=Role.OWNER).user
    return org, owner


def recorded_delivered(endpoint, count=1):
    """Wait until the worker has recorded the endpoint's deliveries as delivered: it does so
    after the receiver answered, so a test must not end (and empty the database under the
    worker) as soon as the receiver has the requests."""
    rows = EventDelivery.objects.filter(
        endpoint=endpoint, state=WorkState.DONE, delivered_at__isnull=False
    )
    wait_for(lambda: rows.count() == count, message=f"{count} deliveries recorded as delivered")
    return rows.get() if count == 1 else list(rows)


def all_emails_recorded_delivered(count):
    """As above, for emails: the worker records each after the backend wrote it."""
    return wait_for(
        lambda: (
            OutgoingEmail.objects.filter(state=WorkState.DONE, delivered_at__isnull=False).count()
            == OutgoingEmail.objects.count()
            == count
        ),
        message=f"{count} emails recorded as delivered",
    )


def received_types(receiver):
    return sorted(json.loads(r.body)["type"] for r in receiver.received)


def test_clearance_rules_fire_once_through_the_worker(worker, receiver):
    org, owner = fleet()
    rules = {
        kind: make_rule(org, kind)
        for kind in (
            RuleKind.CLEARANCE_REJECTED,
            RuleKind.CLEARANCE_ERROR,
            RuleKind.CLEARANCE_REVOKED,
            RuleKind.DEFLEET_REFUSED,
        )
    }
    endpoint = make_endpoint(org, receiver.url(), events=[outgoing.ALERT_FIRED])
    credential, app = wire(org, approval_delay=5)
    (rejected,) = vehicles(org, [SEED_ODOMETER], brand="sandbox")  # no odometer: rejected
    (pending,) = vehicles(org, [SEED_PENDING], brand="mercedes-benz")  # never decided
    (approved,) = vehicles(org, [ordinary_vin(1)], brand="sandbox")
    (refused,) = vehicles(org, ["2HMSHORTVIN00001"], brand="sandbox")  # 16 characters: error
    onboarding.queue_clearance_requests(org.vehicles.all(), credential=credential)
    wait_for(lambda: status_of(refused) == "error", message="HM's error for the short VIN")
    travel(timedelta(seconds=10))
    wait_for(lambda: status_of(rejected) == "rejected", message="the odometer rejection")
    wait_for(lambda: status_of(approved) == "approved", message="the approval")
    sim.revoke_as_carmaker(app, approved.vin)
    wait_for(lambda: status_of(approved) == "revoked", message="the carmaker's revocation")
    # A pending request younger than a day: HM refuses to cancel it.
    defleet.queue_defleet([pending], actor=owner)
    wait_for(lambda: alerts_of(rules[RuleKind.DEFLEET_REFUSED]).exists(), message="refusal")

    expected = {
        RuleKind.CLEARANCE_REJECTED: rejected,
        RuleKind.CLEARANCE_ERROR: refused,
        RuleKind.CLEARANCE_REVOKED: approved,
        RuleKind.DEFLEET_REFUSED: pending,
    }
    for kind in expected:
        wait_for(lambda kind=kind: alerts_of(rules[kind]).exists(), message=f"{kind} alert")
    # The news again (a sync lists every vehicle) fires nothing more.
    assert sync.sync_clearances(credential).hm_calls == 1
    for kind, vehicle in expected.items():
        (alert,) = alerts_of(rules[kind])
        assert alert.vehicle_id == vehicle.pk, kind
        assert Notification.objects.filter(alert=alert, user=owner).exists()
    assert "withdrew the consent" in alerts_of(rules[RuleKind.CLEARANCE_REVOKED]).get().detail
    assert "one day after" in alerts_of(rules[RuleKind.DEFLEET_REFUSED]).get().detail

    # Every alert reached the receiver once, signed; and the owner by email.
    got = receiver.wait_for(4)
    assert received_types(receiver) == ["alert.fired"] * 4
    for request in got:
        assert signing.verify(endpoint.secret, request.body, request.header(signing.HEADER))
    kinds = sorted(json.loads(r.body)["data"]["alert"]["rule"]["kind"] for r in got)
    assert kinds == sorted(expected)
    recorded_delivered(endpoint, count=4)
    all_emails_recorded_delivered(4)
    sent = mailbox.messages()
    assert {m["To"] for m in sent} == {owner.email} and len(sent) == 4
    assert all(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in sent)


def test_time_based_rules_fire_once_through_the_periodic_task(worker):
    org, owner = fleet()
    pending_rule = make_rule(org, RuleKind.PENDING_TOO_LONG, threshold=10)
    silent_rule = make_rule(org, RuleKind.SILENT, threshold=6)
    credential, _app = wire(org, approval_delay=5)
    (pending,) = vehicles(org, [SEED_PENDING], brand="mercedes-benz")
    (quiet,) = vehicles(org, [ordinary_vin(2)], brand="sandbox")
    onboarding.queue_clearance_requests(org.vehicles.all(), credential=credential)
    wait_for(lambda: status_of(quiet) == "pending", message="the requests")
    travel(timedelta(seconds=10))
    wait_for(lambda: status_of(quiet) == "approved", message="the approval")
    # Eleven days pending, thirty hours approved without telemetry.
    Clearance.objects.filter(vehicle=pending).update(
        status_changed_at=timezone.now() - timedelta(days=11)
    )
    Clearance.objects.filter(vehicle=quiet).update(
        status_changed_at=timezone.now() - timedelta(hours=30)
    )
    tasks.evaluate_alert_rules.delay()
    wait_for(lambda: alerts_of(pending_rule).exists(), message="the pending alert")
    wait_for(lambda: alerts_of(silent_rule).exists(), message="the silent alert")
    assert alerts_of(pending_rule).get().title == "Pending for 11 days"
    assert alerts_of(silent_rule).get().vehicle_id == quiet.pk
    # The next runs fire nothing more.
    tasks.evaluate_alert_rules.delay()
    tasks.evaluate_alert_rules.delay()
    time.sleep(2)
    assert alerts_of(pending_rule).count() == alerts_of(silent_rule).count() == 1
    all_emails_recorded_delivered(2)
    sent = mailbox.messages()
    assert sorted(m["Subject"] for m in sent) == [
        f"No telemetry for 6 hours: {quiet.vin} (Alerting fleet)",
        f"Pending for 11 days: {pending.vin} (Alerting fleet)",
    ]
    assert {m["To"] for m in sent} == {owner.email}


def _vin_where(electric: bool, start: int) -> str:
    n = start
    while profile(ordinary_vin(n)).electric != electric:
        n += 1
    return ordinary_vin(n)


def test_telemetry_rules_fire_once_through_the_worker(worker):
    org, _owner = fleet()
    ev_vin, fuel_vin = _vin_where(True, 10), _vin_where(False, 10)
    credential, app = wire(org, approval_delay=5)
    ev, fuelled = vehicles(org, [ev_vin, fuel_vin], brand="sandbox")
    onboarding.queue_clearance_requests(org.vehicles.all(), credential=credential)
    wait_for(lambda: {status_of(ev), status_of(fuelled)} == {"pending"}, message="the requests")
    travel(timedelta(seconds=10))
    wait_for(lambda: {status_of(ev), status_of(fuelled)} == {"approved"}, message="approvals")
    app.failing_fields = "odometer_km"
    app.save()
    # Thresholds just above what the simulated cars report now: both are "low".
    now = sim_clock.now()
    battery = vehicle_state(ev_vin, now)["charging"]["battery_level"]["data"]
    fuel = vehicle_state(fuel_vin, now)["diagnostics"]["fuel_level"]["data"]
    battery_rule = make_rule(org, RuleKind.BATTERY_LOW, threshold=battery * 100 + 1)
    fuel_rule = make_rule(org, RuleKind.FUEL_LOW, threshold=fuel * 100 + 1)
    failure_rule = make_rule(org, RuleKind.FIELD_FAILURE, field="odometer_km")
    for vehicle in (ev, fuelled):
        pull_vehicle_telemetry.delay(vehicle.pk)
    wait_for(lambda: alerts_of(battery_rule).exists(), message="the battery alert")
    wait_for(lambda: alerts_of(fuel_rule).exists(), message="the fuel alert")
    wait_for(lambda: alerts_of(failure_rule).count() == 2, message="two failure alerts")
    assert alerts_of(battery_rule).get().vehicle_id == ev.pk
    assert alerts_of(fuel_rule).get().vehicle_id == fuelled.pk
    assert "did not answer in time" in alerts_of(failure_rule).first().detail
    # Later data, still low and still failing: nothing fires again.
    travel(timedelta(minutes=1))
    for vehicle in (ev, fuelled):
        pull_vehicle_telemetry.delay(vehicle.pk)
    wait_for(
        lambda: (
            Vehicle.objects.filter(
                pk__in=[ev.pk, fuelled.pk], last_seen_at__gte=now + timedelta(seconds=50)
            ).count()
            == 2
        ),
        message="the second pulls",
    )
    assert alerts_of(battery_rule).count() == alerts_of(fuel_rule).count() == 1
    assert alerts_of(failure_rule).count() == 2


def test_a_rejection_reaches_a_failing_receiver_after_retries(worker, receiver):
    org, _owner = fleet()
    endpoint = make_endpoint(org, receiver.url(), events=[outgoing.CLEARANCE_CHANGED])
    credential, _app = wire(org, approval_delay=5)
    (car,) = vehicles(org, [SEED_ODOMETER], brand="sandbox")
    onboarding.queue_clearance_requests(org.vehicles.all(), credential=credential)
    wait_for(lambda: status_of(car) == "pending", message="the request")
    receiver.wait_for(2)  # requested (queued), then pending
    receiver.plan.fail_first = 2  # from now on the receiver fails on purpose, twice
    travel(timedelta(seconds=10))
    wait_for(lambda: status_of(car) == "rejected", message="the rejection")

    def rejection_delivered():
        return EventDelivery.objects.filter(
            endpoint=endpoint,
            state=WorkState.DONE,
            delivered_at__isnull=False,
            event__body__contains='"to":"rejected"',
        ).first()

    delivery = wait_for(rejection_delivered, timeout=40, message="the retried delivery")
    assert delivery.attempts == 3 and delivery.last_status_code == 200
    rejected = [r for r in receiver.received if b'"to":"rejected"' in r.body]
    assert [r.answered for r in rejected][-1] == 200
    assert [r.header("FleetPortal-Delivery-Attempt") for r in rejected][-1] == "3"
    assert len({r.header("FleetPortal-Event-Id") for r in rejected}) == 1
    body = json.loads(rejected[-1].body)
    assert body["data"]["clearance"]["from"] == "pending"
    assert "odometer" in body["data"]["clearance"]["reason"]


def test_a_lost_wake_up_message_only_delays_a_delivery(worker, receiver):
    org, _owner = fleet()
    endpoint = make_endpoint(org, receiver.url())
    now = timezone.now()
    event = OutgoingEvent.objects.create(
        organization=org, type=outgoing.TEST_EVENT, body='{"lost": true}', created_at=now
    )
    # Stored like any delivery, but its task message never reaches the broker.
    EventDelivery.objects.create(
        endpoint=endpoint, event=event, next_attempt_at=now, created_at=now
    )
    time.sleep(1.5)
    assert receiver.received == []
    # The reconciler's round (beat runs it every RECONCILE_INTERVAL_SECONDS) wakes its endpoint.
    assert work.reconcile().get("notifications.webhooks") == 1
    (got,) = receiver.wait_for(1)
    assert got.body == b'{"lost": true}'
    assert recorded_delivered(endpoint).attempts == 1


def test_an_email_the_worker_sends_has_text_html_and_unsubscribe(worker):
    org, owner = fleet()
    make_rule(org, RuleKind.CLEARANCE_REJECTED, name="Rejections")
    credential, _app = wire(org, approval_delay=5)
    (car,) = vehicles(org, [SEED_ODOMETER], brand="sandbox")
    onboarding.queue_clearance_requests(org.vehicles.all(), credential=credential)
    wait_for(lambda: status_of(car) == "pending", message="the request")
    travel(timedelta(seconds=10))
    # The row is marked delivered only after the backend has written (and closed) the whole
    # message: wait for that, not for the first bytes of the file, which the worker may still be
    # writing when a busy machine lets the test read it.
    email = wait_for(
        lambda: OutgoingEmail.objects.filter(state=WorkState.DONE).first(), message="the email"
    )
    assert email.status == "delivered"
    (message,) = mailbox.messages()
    assert message["To"] == owner.email
    assert message["Subject"] == f"Clearance rejected: {car.vin} (Alerting fleet)"
    assert message["List-Unsubscribe"].startswith("<http")
    assert message["Auto-Submitted"] == "auto-generated"
    texts = mailbox.parts(message)
    assert "odometer" in texts["text/plain"].lower() and "<html" in texts["text/html"]
    assert message["Subject"] == email.subject


def test_a_finished_import_reaches_the_receiver(worker, receiver):
    org, manager = fleet("Importing fleet")
    endpoint = make_endpoint(org, receiver.url(), events=[outgoing.IMPORT_FINISHED])
    client = Client()
    client.force_login(manager)
    session = client.session
    session[SESSION_KEY] = str(org.public_id)
    session.save()
    client.post(
        reverse("imports:upload"),
        {"file": SimpleUploadedFile("fleet.csv", fleet_csv(12, brand="sandbox"))},
    )
    job = ImportJob.objects.get()
    wait_for(lambda: ImportJob.objects.get(pk=job.pk).status == "preview", message="preview")
    client.post(reverse("imports:confirm", args=[job.public_id]))
    (got,) = receiver.wait_for(1)
    data = json.loads(got.body)["data"]["import"]
    assert (data["id"], data["file_name"], data["status"]) == (
        str(job.public_id),
        "fleet.csv",
        "done",
    )
    assert (data["total"], data["created"], data["errors"]) == (12, 12, 0)
    assert got.header("FleetPortal-Event-Type") == "import.finished"
    assert recorded_delivered(endpoint).status == "delivered"
