"""End to end through the real parts: a Celery worker process on the test database and broker,
the simulator on the live server over HTTP, webhooks signed and delivered by the simulator
(from the worker) to our receiver, time travel with the simulator's shared clock."""

import re
import time
from datetime import timedelta

import pytest
from django.db.models import Count

from clearance import tasks
from clearance.models import Clearance, ClearanceEvent, WebhookDelivery
from clearance.services import defleet, onboarding
from clearance.state import ALLOWED_MOVES
from simulator import clock as sim_clock
from simulator import webhooks as sim_webhooks
from simulator.models import IssuedToken, SimClearance, SimulatedApp, SimWebhookDelivery
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

pytestmark = pytest.mark.slow


@pytest.fixture
def worker(transactional_db, celery_worker, live_server):
    sim_clock.reset()
    yield celery_worker
    sim_clock.reset()


def travel(delta):
    """Advance the shared simulator clock and let it send the webhooks that became due."""
    sim_clock.advance(delta)
    sim_webhooks.detect_changes()


def all_in(credential, wanted: dict[str, str]):
    def check():
        return statuses(credential) == wanted

    return check


def assert_history_follows_the_graph():
    for from_status, to_status in ClearanceEvent.objects.values_list("from_status", "to_status"):
        if from_status:
            assert to_status in ALLOWED_MOVES[from_status], (from_status, to_status)


def test_onboard_travel_and_defleet(worker, manager_user):
    org = OrganizationFactory()
    credential, app = wire(org, approval_delay=5)
    vehicles(org, [SEED_ODOMETER], brand="sandbox", odometer_km=2050)
    vehicles(org, [SEED_PENDING], brand="mercedes-benz")
    vehicles(org, [SEED_REJECTED], brand="sandbox")
    ordinary = [ordinary_vin(i) for i in range(20)]
    vehicles(org, ordinary, brand="sandbox")
    # Another fleet sends the odometer seed without the control measure.
    other_org = OrganizationFactory()
    other_credential, _ = wire(other_org, approval_delay=5)
    vehicles(other_org, [SEED_ODOMETER], brand="sandbox")

    onboarding.queue_clearance_requests(org.vehicles.all(), credential=credential, actor=None)
    onboarding.queue_clearance_requests(other_org.vehicles.all(), credential=other_credential)
    everyone = [SEED_ODOMETER, SEED_PENDING, SEED_REJECTED, *ordinary]
    wait_for(
        all_in(credential, dict.fromkeys(everyone, "pending")),
        timeout=30,
        message="the worker to send the requests",
    )
    wait_for(all_in(other_credential, {SEED_ODOMETER: "pending"}), timeout=30, message="other")

    travel(timedelta(seconds=10))
    expected = {
        SEED_ODOMETER: "approved",
        SEED_PENDING: "pending",
        SEED_REJECTED: "pending",
        **dict.fromkeys(ordinary, "approved"),
    }
    wait_for(all_in(credential, expected), timeout=40, message="approvals by webhook")
    wait_for(all_in(other_credential, {SEED_ODOMETER: "rejected"}), timeout=30, message="reject")
    approvals = ClearanceEvent.objects.filter(
        clearance__credential=credential, to_status="approved"
    )
    assert set(approvals.values_list("source", flat=True)) == {"webhook"}
    odometer_rejection = Clearance.objects.get(credential=other_credential)
    assert "odometer" in odometer_rejection.description.lower()

    travel(timedelta(hours=3))
    expected[SEED_REJECTED] = "rejected"
    wait_for(all_in(credential, expected), timeout=30, message="the 3-hour rejection")

    # A redelivered webhook (same X-HM-Delivery) is stored once and applied once.
    events_before = ClearanceEvent.objects.count()
    deliveries_before = WebhookDelivery.objects.count()
    redeliver = SimWebhookDelivery.objects.filter(app=app, event="fleet_clearance_changed")[:5]
    for delivery in redeliver:
        SimWebhookDelivery.objects.filter(pk=delivery.pk).update(status="pending")
        assert sim_webhooks.deliver(delivery.pk)
    assert WebhookDelivery.objects.count() == deliveries_before
    assert ClearanceEvent.objects.count() == events_before

    # Defleet one approved and one pending vehicle (a day later: pending can be canceled).
    travel(timedelta(days=1))
    to_defleet = list(org.vehicles.filter(vin__in=[ordinary[0], SEED_PENDING]))
    assert defleet.queue_defleet(to_defleet, actor=manager_user) == 2
    expected[ordinary[0]] = "revoking"
    expected[SEED_PENDING] = "canceling"
    wait_for(all_in(credential, expected), timeout=30, message="defleet answers")
    travel(timedelta(seconds=10))
    expected[ordinary[0]] = "revoked"
    expected[SEED_PENDING] = "canceled"
    wait_for(all_in(credential, expected), timeout=30, message="revoked/canceled by webhook")

    # A sync by the beat task finds nothing left to change.
    tasks.sync_all_clearances.delay()
    time.sleep(2)
    assert statuses(credential) == expected
    assert_history_follows_the_graph()
    # The last webhooks may arrive after the states they announce were already reached (the
    # defleet's answer, the sync): each is still confirmed, once its debounce window ends.
    wait_for(
        lambda: not WebhookDelivery.objects.filter(processed_at__isnull=True).exists(),
        timeout=30,
        message="every stored webhook confirmed",
    )


def test_onboarding_500_vins_with_faults(worker, settings):
    org = OrganizationFactory()
    credential, app = wire(
        org,
        webhooks=False,
        approval_delay=5,
        error_rate=0.3,
        rate_limit_rate=0.1,
        retry_after_seconds=1,
        # On top of the random faults, the first two calls fail for sure (so retries happen).
        next_fault_status=503,
        next_fault_count=2,
    )
    vins = [ordinary_vin(1000 + i) for i in range(500)]
    vehicles(org, vins, brand="sandbox")
    log_start = len(worker.log())
    started = time.monotonic()
    onboarding.queue_clearance_requests(org.vehicles.all(), credential=credential)
    wait_for(
        lambda: not Clearance.objects.filter(credential=credential, status="queued").exists(),
        timeout=60,
        interval=0.5,
        message="every VIN sent despite 5xx and 429",
    )
    sent_in = time.monotonic() - started
    assert statuses(credential) == dict.fromkeys(vins, "pending")
    # None lost, none requested twice after success (no second round at HM, one answer each).
    sims = SimClearance.objects.filter(app=app)
    assert sims.count() == 500
    assert not sims.exclude(history=[]).exists()
    # Faults hit before HM reads a batch, so every VIN reached HM in exactly one POST.
    assert set(sims.values_list("times_requested", flat=True)) == {1}
    per_row = (
        ClearanceEvent.objects.filter(clearance__credential=credential, source="api")
        .values("clearance")
        .annotate(n=Count("id"))
    )
    assert {row["n"] for row in per_row} == {1}
    assert len(per_row) == 500
    log = worker.log()[log_start:]
    assert re.search(r"retrying in", log), "the faults should have caused retries"

    # Still faulty HM: the sync retries too, and every VIN ends approved.
    travel(timedelta(seconds=10))
    tasks.sync_credential.delay(credential.pk)
    wait_for(
        all_in(credential, dict.fromkeys(vins, "approved")),
        timeout=40,
        interval=0.5,
        message="the sync to approve all 500",
    )
    print(f"500 VINs sent through faults in {sent_in:.1f}s")


def test_four_concurrent_syncs_renew_the_app_token_once(worker):
    """Four syncs at once in the worker's four threads: the token cache's single-flight lock
    (in the shared cache, so it holds across processes and hosts alike) lets one of them fetch
    the app token while the others wait for it."""
    org = OrganizationFactory()
    credential, app = wire(org, webhooks=False, latency_ms=400)
    log_start = len(worker.log())
    for _ in range(4):
        tasks.sync_credential.delay(credential.pk)

    def finished():
        return len(re.findall(r"sync_credential\[[^\]]+\] succeeded", worker.log()[log_start:]))

    wait_for(lambda: finished() >= 4, timeout=40, message="four syncs")
    assert IssuedToken.objects.filter(app=app, kind="app").count() == 1
    assert SimulatedApp.objects.get(pk=app.pk).latency_ms == 400
