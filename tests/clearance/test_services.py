"""Lifecycle services in-process against the simulator on the live server (real HTTP).

Tasks queued on commit are recorded, not sent, so no worker interferes; the worker tests are in
test_lifecycle_worker.py.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from clearance.hm import AuthenticationError
from clearance.models import Clearance, ClearanceEvent, Credential, HMWork, VehicleToken
from clearance.services import defleet, onboarding, sending, sync, token_work, vehicle_tokens
from simulator import clock as sim_clock
from simulator import services as sim
from simulator.models import IssuedToken, SimClearance
from tests.clearance.lifecycle_helpers import (
    SEED_ODOMETER,
    SEED_PENDING,
    SEED_REJECTED,
    ordinary_vin,
    statuses,
    vehicles,
    wire,
)
from tests.conftest import wait_for
from tests.factories import OrganizationFactory


@pytest.fixture
def org(simulator, organization):
    return organization


def onboard(org, vins, credential=None, **fields):
    credential = credential or wire(org, webhooks=False)[0]
    cars = vehicles(org, vins, brand=fields.pop("brand", "sandbox"), **fields)
    result = onboarding.queue_clearance_requests(cars, credential=credential)
    return credential, cars, result


def test_queue_then_request_in_batches_with_control_measures(org, settings, queued_tasks):
    settings.HM_CLEARANCE_BATCH_SIZE = 2
    credential, _ = wire(org, webhooks=False)
    vehicles(org, [SEED_ODOMETER], brand="sandbox", odometer_km=2050)
    vehicles(org, [ordinary_vin(i) for i in range(4)], brand="sandbox")
    result = onboarding.queue_clearance_requests(
        org.vehicles.all(), credential=credential, actor=None
    )
    assert result.queued == 5
    assert queued_tasks == [("request_clearances", credential.pk)]
    assert set(statuses(credential).values()) == {"queued"}

    summary = sending.request_clearances(credential.pk)
    assert (summary.hm_calls, summary.batches, summary.sent) == (3, 3, 5)
    assert set(statuses(credential).values()) == {"pending"}
    assert SimClearance.objects.get(vin=SEED_ODOMETER).control_odometer_km == 2050
    assert SimClearance.objects.get(vin=ordinary_vin(0)).control_odometer_km is None
    row = Clearance.objects.get(vehicle__vin=SEED_ODOMETER)
    assert row.requested_at is not None
    assert list(row.events.values_list("from_status", "to_status", "source")) == [
        ("", "queued", "system"),
        ("queued", "pending", "api"),
    ]
    # Nothing left: a second run sends nothing.
    assert sending.request_clearances(credential.pk).hm_calls == 0


def test_queue_skips_active_and_other_organizations(org):
    credential, cars, _ = onboard(org, [ordinary_vin(1)])
    stranger = vehicles(OrganizationFactory(), [ordinary_vin(2)])
    again = onboarding.queue_clearance_requests(cars + stranger, credential=credential)
    assert again.queued == 0
    assert again.skipped == 1
    assert again.skipped_reasons == {"already queued": 1, "other organization": 1}
    assert not Clearance.objects.filter(vehicle=stranger[0]).exists()


def test_per_vin_error_is_explained(org):
    credential, _cars, _ = onboard(org, [ordinary_vin(1)], brand="unknown")
    sending.request_clearances(credential.pk)
    row = Clearance.objects.get()
    assert row.status == "error"
    assert row.last_error == "High Mobility refused the request: The brand is invalid."
    assert row.description == "The brand is invalid"


def _make_due(credential):
    HMWork.objects.filter(credential=credential).update(next_attempt_at=timezone.now())


def test_transient_error_keeps_the_batch_queued_and_says_when_it_is_tried_next(org):
    credential, _app = wire(org, webhooks=False, next_fault_status=503, next_fault_count=1)
    onboard(org, [ordinary_vin(1), ordinary_vin(2)], credential=credential)
    summary = sending.request_clearances(credential.pk)  # nothing raised: the rows retry
    assert summary.retrying == 2
    assert set(statuses(credential).values()) == {"queued"}
    assert not SimClearance.objects.exists()
    row = Clearance.objects.first()
    assert row.last_error.startswith("High Mobility")
    assert "Next try at" in row.last_error
    work_row = HMWork.objects.get(clearance=row)
    assert (work_row.state, work_row.attempts) == ("pending", 1)
    assert work_row.next_attempt_at > timezone.now()
    # Not due yet: a repeated wake sends nothing.
    assert sending.request_clearances(credential.pk).hm_calls == 0
    _make_due(credential)
    again = sending.request_clearances(credential.pk)
    # The 503 left it unclear whether HM had the batch: asked first (1 call), then sent (1).
    assert again.hm_calls == 2
    assert set(statuses(credential).values()) == {"pending"}
    assert Clearance.objects.filter(last_error="").count() == 2
    assert set(HMWork.objects.values_list("state", flat=True)) == {"done"}


def test_a_timed_out_send_is_not_sent_again_when_hm_has_it(org, settings):
    """HM slower than our read timeout: it got the batch, we never read the answer."""
    from clearance.clients import hm_client_for

    settings.HM_READ_TIMEOUT = 0.5
    credential, app = wire(org, webhooks=False)
    hm_client_for(credential).get_token()  # shared through the cache: only the POST is slow
    app.latency_ms = 1200
    app.save()
    onboard(org, [ordinary_vin(1), ordinary_vin(2)], credential=credential)
    sending.request_clearances(credential.pk)
    assert set(statuses(credential).values()) == {"queued"}
    assert "did not answer in time" in Clearance.objects.first().last_error
    assert HMWork.objects.filter(sending_at__isnull=False).count() == 2
    app.latency_ms = 0
    app.save()
    # HM finishes the slow request after we gave up reading its answer.
    wait_for(lambda: SimClearance.objects.count() == 2, timeout=10)
    _make_due(credential)
    summary = sending.request_clearances(credential.pk)
    assert (summary.already_known, summary.sent) == (2, 0)
    assert set(statuses(credential).values()) == {"pending"}
    # Each VIN reached HM exactly once.
    assert sorted(SimClearance.objects.values_list("times_requested", flat=True)) == [1, 1]
    assert set(HMWork.objects.values_list("state", flat=True)) == {"done"}


def test_rate_limited_send_waits_at_least_retry_after(org):
    credential, _app = wire(
        org, webhooks=False, next_fault_status=429, next_fault_count=1, retry_after_seconds=40
    )
    onboard(org, [ordinary_vin(1)], credential=credential)
    before = timezone.now()
    sending.request_clearances(credential.pk)
    work_row = HMWork.objects.get()
    assert work_row.next_attempt_at - before >= timedelta(seconds=40)
    assert work_row.sending_at is None  # refused, so nothing to ask HM about
    _make_due(credential)
    summary = sending.request_clearances(credential.pk)
    assert (summary.hm_calls, summary.sent) == (1, 1)


def test_refused_credential_stops_and_explains(org):
    credential, _ = wire(org, webhooks=False)
    Credential.objects.filter(pk=credential.pk).update(client_secret="x")  # raw, not encrypted
    credential = Credential.objects.get(pk=credential.pk)
    credential.client_secret = "wrong-secret"
    credential.save()
    onboard(org, [ordinary_vin(1)], credential=credential)
    summary = sending.request_clearances(credential.pk)
    assert "did not accept the credentials" in summary.error
    row = Clearance.objects.get()
    assert row.status == "queued"
    assert "did not accept the credentials" in row.last_error


def test_sync_is_one_call_and_writes_only_changes(org, django_assert_max_num_queries):
    credential, _cars, _ = onboard(org, [ordinary_vin(i) for i in range(40)])
    sending.request_clearances(credential.pk)
    sim_clock.advance(timedelta(seconds=30))
    with django_assert_max_num_queries(12):
        summary = sync.sync_clearances(credential)
    assert summary.hm_calls == 1
    assert summary.moves == {("pending", "approved"): 40}
    assert set(statuses(credential).values()) == {"approved"}
    assert ClearanceEvent.objects.filter(source="poll", to_status="approved").count() == 40
    # Nothing moved: nothing written.
    with django_assert_max_num_queries(4):
        again = sync.sync_clearances(credential)
    assert (again.hm_calls, again.written, again.changed) == (1, 0, 0)


def test_sync_query_count_does_not_grow_with_rows(org, django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for size in (5, 60):
        credential, _cars, _ = onboard(org, [f"2HMQ{size:03d}{i:010d}" for i in range(size)])
        sending.request_clearances(credential.pk)
        sim_clock.advance(timedelta(seconds=30))
        with CaptureQueriesContext(connection) as ctx:
            sync.sync_clearances(credential)
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1], counts


def test_seed_vins_through_sync(org):
    credential, _ = wire(org, webhooks=False)
    vehicles(org, [SEED_ODOMETER], brand="sandbox", odometer_km=2050)
    vehicles(org, [SEED_PENDING, SEED_REJECTED], brand="sandbox")
    onboarding.queue_clearance_requests(org.vehicles.all(), credential=credential)
    sending.request_clearances(credential.pk)
    sim_clock.advance(timedelta(minutes=1))
    sync.sync_clearances(credential)
    assert statuses(credential) == {
        SEED_ODOMETER: "approved",
        SEED_PENDING: "pending",
        SEED_REJECTED: "pending",
    }
    sim_clock.advance(timedelta(hours=3))
    sync.sync_clearances(credential)
    assert statuses(credential)[SEED_REJECTED] == "rejected"
    assert statuses(credential)[SEED_PENDING] == "pending"
    rejected = Clearance.objects.get(vehicle__vin=SEED_REJECTED)
    assert "3 hours" in rejected.description


def test_odometer_seed_rejected_without_control_measure(org):
    credential, _cars, _ = onboard(org, [SEED_ODOMETER])
    sending.request_clearances(credential.pk)
    sim_clock.advance(timedelta(minutes=1))
    sync.sync_clearances(credential)
    row = Clearance.objects.get()
    assert row.status == "rejected"
    assert "odometer" in row.description.lower()


def test_reconciler_wakes_a_send_whose_message_was_lost(org, queued_tasks, monkeypatch):
    from clearance import tasks
    from durable import work

    credential, _cars, _ = onboard(org, [ordinary_vin(1)])
    queued_tasks.clear()  # the waker's message is lost
    woken = []
    monkeypatch.setattr(tasks.request_clearances, "delay", woken.append)
    assert work.reconcile()["clearance.send"] == 1
    assert woken == [credential.pk]
    # The sync no longer sends anything: the reconciler is the one safety net.
    sync.sync_clearances(credential)
    assert queued_tasks == []


def test_sync_adopts_a_request_whose_answer_was_lost(org, queued_tasks):
    credential, app = wire(org, webhooks=False)
    onboard(org, [ordinary_vin(1)], credential=credential)
    # HM got the request, but our worker died before saving the answer.
    sim.request_clearances(app, [{"vin": ordinary_vin(1), "brand": "sandbox"}])
    Clearance.objects.update(status_known_at=timezone.now() - timedelta(hours=1))
    queued_tasks.clear()
    summary = sync.sync_clearances(credential)
    assert statuses(credential) == {ordinary_vin(1): "pending"}
    assert summary.changed == 1
    assert queued_tasks == []
    assert SimClearance.objects.get().history == []


def test_reonboard_after_rejection(org):
    credential, cars, _ = onboard(org, [SEED_ODOMETER])
    sending.request_clearances(credential.pk)
    sim_clock.advance(timedelta(minutes=1))
    sync.sync_clearances(credential)
    assert statuses(credential) == {SEED_ODOMETER: "rejected"}
    cars[0].odometer_km = 2050
    cars[0].save()
    assert onboarding.reonboard(cars).queued == 1
    assert statuses(credential) == {SEED_ODOMETER: "queued"}
    # A sync before the new request is sent must not bring the old rejection back.
    sync.sync_clearances(credential)
    assert statuses(credential) == {SEED_ODOMETER: "queued"}
    sending.request_clearances(credential.pk)
    sim_clock.advance(timedelta(minutes=1))
    sync.sync_clearances(credential)
    assert statuses(credential) == {SEED_ODOMETER: "approved"}


def test_defleet_approved_and_pending(org, owner_user):
    credential, _ = wire(org, webhooks=False)
    approved = vehicles(org, [ordinary_vin(1)], brand="sandbox")[0]
    pending = vehicles(org, [SEED_PENDING], brand="mercedes-benz")[0]
    onboarding.queue_clearance_requests([approved, pending], credential=credential)
    sending.request_clearances(credential.pk)
    sim_clock.advance(timedelta(minutes=1))
    sync.sync_clearances(credential)

    # Too early to cancel a pending request: explained, nothing changes.
    (early,) = defleet.defleet([pending], actor=owner_user)
    assert not early.ok
    assert "one day after it was sent" in early.message
    row = Clearance.objects.get(vehicle=pending)
    assert row.status == "pending" and "one day" in row.last_error

    sim_clock.advance(timedelta(days=1, minutes=1))
    outcomes = {o.vin: o for o in defleet.defleet([approved, pending], actor=owner_user)}
    assert outcomes[ordinary_vin(1)].ok and outcomes[ordinary_vin(1)].status == "revoking"
    assert outcomes[SEED_PENDING].ok and outcomes[SEED_PENDING].status == "canceling"
    event = Clearance.objects.get(vehicle=approved).events.latest("id")
    assert (event.to_status, event.source, event.actor) == ("revoking", "user", owner_user)
    assert Clearance.objects.get(vehicle=pending).last_error == ""

    # Again while in transition: refused locally, in words, without asking HM.
    (twice,) = defleet.defleet([approved], actor=owner_user)
    assert not twice.ok and "already under way" in twice.message

    sim_clock.advance(timedelta(minutes=1))
    sync.sync_clearances(credential)
    assert statuses(credential) == {ordinary_vin(1): "revoked", SEED_PENDING: "canceled"}


def test_defleet_refusals_in_words(org, queued_tasks):
    credential, _ = wire(org, webhooks=False)
    sandbox_pending = vehicles(org, [SEED_PENDING], brand="sandbox")[0]
    approved = vehicles(org, [ordinary_vin(1)], brand="sandbox")[0]
    onboarding.queue_clearance_requests([sandbox_pending, approved], credential=credential)
    sending.request_clearances(credential.pk)
    sim_clock.advance(timedelta(days=2))
    sync.sync_clearances(credential)
    (unsupported,) = defleet.defleet([sandbox_pending])
    assert "does not allow canceling a pending request" in unsupported.message
    # HM is already revoking while we still think approved: 409 in transition.
    defleet.defleet([approved])
    Clearance.objects.filter(vehicle=approved).update(status="approved")
    (conflict,) = defleet.defleet([approved])
    assert not conflict.ok
    assert "already changing this clearance" in conflict.message
    assert ("sync_credential", credential.pk) in queued_tasks
    never = vehicles(org, [ordinary_vin(9)])[0]
    (none,) = defleet.defleet([never])
    assert "No clearance was ever requested" in none.message


def sa_credential(org):
    credential, _app = wire(org, webhooks=False)
    _, keys = sim.create_app("SA app", approval_delay_seconds=5)
    credential.auth_mode = Credential.AuthMode.SERVICE_ACCOUNT
    credential.service_account_key_id = keys.service_account_key_id
    credential.private_key = keys.service_account_private_key_pem
    credential.client_id = keys.client_id
    credential.client_secret = keys.client_secret
    credential.save()
    return credential


def test_service_account_vehicle_tokens(org, queued_tasks, settings):
    credential = sa_credential(org)
    _, cars, _ = onboard(org, [ordinary_vin(1)], credential=credential)
    sending.request_clearances(credential.pk)
    sim_clock.advance(timedelta(minutes=1))
    queued_tasks.clear()
    sync.sync_clearances(credential)
    clearance = Clearance.objects.get()
    assert clearance.status == "approved"
    # The approval wrote the token's issue as durable work, and woke the credential's worker.
    assert queued_tasks == [("vehicle_token_work", credential.pk)]
    assert token_work.token_work_due(credential.pk) == (1, False)
    token = VehicleToken.objects.get()
    first_refresh = token.refresh_token
    # The token's renewal is written with it, due one margin before it expires.
    renewal = HMWork.objects.get(kind="token_refresh")
    margin = timedelta(seconds=settings.VEHICLE_TOKEN_REFRESH_MARGIN_SECONDS)
    assert (renewal.state, renewal.next_attempt_at) == ("pending", token.expires_at - margin)
    # Not yet due: nothing happens.
    assert not vehicle_tokens.refresh_vehicle_token(token.pk, margin_seconds=60)
    # Due: refreshed, and the rotated refresh token is kept.
    assert vehicle_tokens.refresh_vehicle_token(token.pk, margin_seconds=7200)
    token.refresh_from_db()
    assert token.refresh_token and token.refresh_token != first_refresh
    assert vehicle_tokens.vehicle_access_token(clearance) == token.access_token
    # The old refresh token no longer works at HM (rotation): a second refresh used the new one.
    assert vehicle_tokens.refresh_vehicle_token(token.pk, margin_seconds=7200)
    # The renewal row is due when the token is: the worker renews it and reschedules the row.
    HMWork.objects.filter(pk=renewal.pk).update(next_attempt_at=timezone.now())
    VehicleToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() + margin / 2)
    before = VehicleToken.objects.get().access_token
    assert token_work.token_work_due(credential.pk) == (1, False)
    token.refresh_from_db()
    renewal.refresh_from_db()
    assert token.access_token != before
    assert (renewal.state, renewal.next_attempt_at) == ("pending", token.expires_at - margin)
    # Defleet writes the revocation; the worker revokes the token at HM.
    (outcome,) = defleet.defleet(cars)
    assert outcome.ok
    assert VehicleToken.objects.exists()
    assert token_work.token_work_due(credential.pk) == (1, False)
    assert not VehicleToken.objects.exists()
    assert HMWork.objects.get(kind="token_revoke").state == "done"
    live = IssuedToken.objects.filter(
        kind__in=["vehicle_access", "vehicle_refresh"], revoked_at__isnull=True
    )
    assert not live.exists()
    # The renewal finds nothing left to renew.
    HMWork.objects.filter(pk=renewal.pk).update(next_attempt_at=timezone.now())
    assert token_work.token_work_due(credential.pk) == (1, False)
    assert HMWork.objects.get(pk=renewal.pk).state == "done"


def test_reconciler_wakes_token_work_whose_message_was_lost(org, queued_tasks, monkeypatch):
    from clearance import tasks
    from durable import work

    credential = sa_credential(org)
    onboard(org, [ordinary_vin(1)], credential=credential)
    sending.request_clearances(credential.pk)
    sim_clock.advance(timedelta(minutes=1))
    sync.sync_clearances(credential)
    queued_tasks.clear()  # the token worker's message is lost
    woken = []
    monkeypatch.setattr(tasks.vehicle_token_work, "delay", woken.append)
    assert work.reconcile()["clearance.tokens"] == 1
    assert woken == [credential.pk]


def test_incomplete_credential_is_explained_not_crashed(org):
    credential, _ = wire(org, webhooks=False)
    credential.client_secret = ""
    credential.save()
    onboard(org, [ordinary_vin(1)], credential=credential)
    summary = sending.request_clearances(credential.pk)
    assert "missing" in summary.error
    assert "missing" in Clearance.objects.get().last_error


def test_auth_error_type_is_permanent():
    assert not AuthenticationError().is_transient


def test_first_sync_after_onboarding_writes_only_the_rows_that_moved(org):
    credential, _cars, _ = onboard(org, [ordinary_vin(i) for i in range(20)])
    sending.request_clearances(credential.pk)
    # Two of twenty approve at HM; the others stay pending there and here.
    SimClearance.objects.exclude(vin__in=[ordinary_vin(0), ordinary_vin(1)]).update(
        approval_delay_seconds=10**6
    )
    sim_clock.advance(timedelta(seconds=30))
    summary = sync.sync_clearances(credential)
    assert (summary.compared, summary.written, summary.changed) == (20, 2, 2)
    assert sorted(s for s in statuses(credential).values()) == ["approved"] * 2 + ["pending"] * 18


def test_bulk_defleet_is_durable_work_retried_per_vehicle(org, queued_tasks):
    credential, app = wire(org, webhooks=False)
    vins = [ordinary_vin(i) for i in range(3)]
    cars = onboard(org, vins, credential=credential)[1]
    sending.request_clearances(credential.pk)
    sim_clock.advance(timedelta(seconds=30))
    sync.sync_clearances(credential)
    assert set(statuses(credential).values()) == {"approved"}
    queued_tasks.clear()
    assert defleet.queue_defleet(cars) == 3
    assert queued_tasks == [("defleet_due", credential.pk)]  # a waker; the work is in rows
    assert HMWork.objects.filter(kind="defleet", state="pending").count() == 3
    app.next_fault_status = 503
    app.next_fault_count = 1
    app.save()
    done, more = defleet.defleet_due(credential.pk)
    assert (done, more) == (2, False)  # one failed, the others went on
    states = statuses(credential)
    assert sorted(states.values()) == ["approved", "revoking", "revoking"]
    waiting = HMWork.objects.get(kind="defleet", state="pending")
    assert waiting.attempts == 1
    assert "Next try at" in waiting.clearance.last_error
    HMWork.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now())
    assert defleet.defleet_due(credential.pk) == (1, False)
    assert set(statuses(credential).values()) == {"revoking"}
