"""The pull schedule (telemetry/schedule.py): durable rows, spread pulls, a bounded broker."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from clearance.hm import errors as hm
from clearance.models import Clearance
from durable import work
from telemetry import pull, schedule, tasks
from telemetry.models import PullWaker, TelemetryPull
from tests.factories import ClearanceFactory
from tests.telemetry.test_services import FakeClient, sample
from vehicles.models import Vehicle

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
INTERVAL = 300


class Broker:
    """Stands in for the broker: keeps what the code sends and delivers it when due."""

    def __init__(self, monkeypatch):
        self.messages: list[tuple[datetime, object, tuple, dict]] = []
        self.most = 0
        self.sent = 0
        for task in (tasks.pull_due_telemetry, tasks.pull_vehicle_telemetry):
            monkeypatch.setattr(task, "apply_async", self._keeper(task))

    def _keeper(self, task):
        def apply_async(args=(), kwargs=None, countdown=None, **options):
            due = timezone.now() + timedelta(seconds=countdown or 0)
            self.messages.append((due, task, tuple(args), kwargs or {}))
            self.sent += 1
            self.most = max(self.most, len(self.messages))

        return apply_async

    def deliver_due(self) -> int:
        """Run every message that is due, including the ones they send; how many ran."""
        ran = 0
        while due := [m for m in self.messages if m[0] <= timezone.now()]:
            message = due[0]
            self.messages.remove(message)
            message[1].run(*message[2], **message[3])
            ran += 1
        return ran


@pytest.fixture
def broker(monkeypatch, settings):
    settings.TELEMETRY_PULL_INTERVAL_SECONDS = INTERVAL
    settings.TELEMETRY_PULL_WAKERS = 2
    settings.RECONCILE_INTERVAL_SECONDS = 30
    # Wakers are sent when the transaction commits; the test's transaction never does.
    monkeypatch.setattr(
        "django.db.transaction.on_commit", lambda callback, *a, **kw: callback(), raising=True
    )
    return Broker(monkeypatch)


@pytest.fixture
def client(monkeypatch) -> FakeClient:
    fake = FakeClient(sample("rest_full.json"))
    monkeypatch.setattr(pull, "_client_for", lambda credential: fake)
    return fake


def approved_fleet(organization, n: int) -> list[int]:
    return [
        ClearanceFactory(vehicle__organization=organization, status="approved").vehicle_id
        for _ in range(n)
    ]


def reconcile_round(broker: Broker) -> dict[str, int]:
    """What beat does every reconciler interval: sync the schedule, wake what is due."""
    tasks.pull_approved_vehicles.run()
    return work.reconcile()


@time_machine.travel(NOW, tick=False)
def test_the_schedule_follows_approvals_and_spreads_first_pulls(organization, settings):
    settings.TELEMETRY_PULL_INTERVAL_SECONDS = INTERVAL
    fleet = approved_fleet(organization, 20)
    ClearanceFactory(vehicle__organization=organization, status="pending")
    ClearanceFactory(vehicle__organization=organization, status="approved", credential=None)
    assert schedule.sync_schedule() == (20, 0)
    assert schedule.sync_schedule() == (0, 0)  # nothing twice
    rows = TelemetryPull.objects.all()
    assert sorted(r.vehicle_id for r in rows) == sorted(fleet)
    firsts = sorted((r.next_attempt_at - NOW).total_seconds() for r in rows)
    assert firsts[0] >= 0 and firsts[-1] <= INTERVAL
    assert firsts[-1] - firsts[0] > INTERVAL / 4  # spread out, not one burst
    Clearance.objects.filter(vehicle_id__in=fleet[:3]).update(status="revoked")
    assert schedule.sync_schedule() == (0, 3)
    assert not TelemetryPull.objects.filter(vehicle_id__in=fleet[:3]).exists()


@time_machine.travel(NOW, tick=False)
def test_many_approved_vehicles_queue_a_bounded_number_of_messages(organization, broker, client):
    fleet = approved_fleet(organization, 120)
    with time_machine.travel(NOW, tick=False) as clock:
        woken = reconcile_round(broker)
        assert woken["telemetry.pulls"] == 0  # the first pulls are spread over the interval
        pulled_by: list[int] = []
        # An interval and a half, in steps of 5 s: the reconciler every 30 s, messages on time.
        for step in range(int(1.5 * INTERVAL / 5) + 1):
            if step % 6 == 0:
                reconcile_round(broker)
            broker.deliver_due()
            pulled_by.append(len(client.calls))
            clock.shift(5)
    # Every vehicle pulled within its first interval, and then once more an interval later ...
    vins = set(Vehicle.objects.filter(pk__in=fleet).values_list("vin", flat=True))
    assert set(client.calls[: pulled_by[INTERVAL // 5]]) == vins
    assert set(Counter(client.calls).values()) <= {1, 2} and len(client.calls) < 2 * 120
    # ... spread out: no 30 s window saw more than a third of the fleet ...
    assert max(b - a for a, b in zip(pulled_by, pulled_by[6:], strict=False)) < 40
    # ... and never more than one message per lane in the broker (the old beat job held one per
    # vehicle: 120 here, 11,700 at 11,700 vehicles).
    assert broker.most <= 2
    assert TelemetryPull.objects.filter(vehicle_id__in=fleet, attempts=0).count() == 120


@time_machine.travel(NOW, tick=False)
def test_a_lost_waker_is_woken_by_the_reconciler_and_a_stale_one_does_nothing(
    organization, broker, client, settings
):
    approved_fleet(organization, 3)
    schedule.sync_schedule()
    TelemetryPull.objects.update(next_attempt_at=NOW)  # all due now
    assert work.reconcile()["telemetry.pulls"] == 2  # one message per lane
    assert work.reconcile()["telemetry.pulls"] == 0  # the lanes have a live message
    lost = list(broker.messages)
    broker.messages.clear()  # the broker lost them (Redis restarted without persistence)
    with time_machine.travel(NOW + timedelta(seconds=29), tick=False):
        assert work.reconcile()["telemetry.pulls"] == 0  # not yet: they may just be queued
    with time_machine.travel(NOW + timedelta(seconds=31), tick=False):
        assert work.reconcile()["telemetry.pulls"] == 2  # within one interval: woken again
        for _due, task, args, _kwargs in lost:  # the lost ones turn up after all: they do nothing
            task.run(*args)
        assert client.calls == []
        broker.deliver_due()
    assert sorted(client.calls) == sorted(
        TelemetryPull.objects.values_list("vehicle__vin", flat=True)
    )
    assert not work.due(schedule.pulls(), NOW + timedelta(seconds=31)).exists()


@time_machine.travel(NOW, tick=False)
def test_a_transient_failure_backs_off_per_vehicle_honouring_retry_after(
    organization, settings, monkeypatch
):
    settings.TELEMETRY_PULL_INTERVAL_SECONDS = INTERVAL
    settings.DURABLE_RETRY_BASE_SECONDS = 5
    limited, fine = approved_fleet(organization, 2)
    limited_vin = Vehicle.objects.get(pk=limited).vin

    class PartlyLimited(FakeClient):
        def get_vehicle_data(self, vin):
            self.calls.append(vin)
            if vin == limited_vin:
                raise hm.RateLimited(status_code=429, retry_after=120)
            return sample("rest_full.json")

    fake = PartlyLimited(None)
    monkeypatch.setattr(pull, "_client_for", lambda credential: fake)
    schedule.sync_schedule()
    TelemetryPull.objects.update(next_attempt_at=NOW)
    assert schedule.pull_due(pull.fetch) == (2, False)
    row = TelemetryPull.objects.get(vehicle_id=limited)
    assert (row.state, row.attempts, row.outcome) == ("pending", 1, "retrying")
    assert row.next_attempt_at >= NOW + timedelta(seconds=120)  # HM's retry-after
    assert "too many requests" in row.last_error.lower()
    other = TelemetryPull.objects.get(vehicle_id=fine)
    assert (other.attempts, other.outcome) == (0, "ok")  # one vehicle's failure is its own
    assert other.next_attempt_at >= NOW + timedelta(seconds=0.95 * INTERVAL)
    # Failing again doubles its backoff; a success starts over.
    with time_machine.travel(row.next_attempt_at, tick=False):
        assert schedule.pull_due(pull.fetch) == (1, False)
    assert TelemetryPull.objects.get(vehicle_id=limited).attempts == 2
    limited_vin = "none"
    row = TelemetryPull.objects.get(vehicle_id=limited)
    with time_machine.travel(row.next_attempt_at, tick=False):
        assert schedule.pull_due(pull.fetch) == (1, False)
    row = TelemetryPull.objects.get(vehicle_id=limited)
    assert (row.attempts, row.outcome, row.last_error) == (0, "ok", "")


@time_machine.travel(NOW, tick=False)
def test_the_refresh_button_pulls_at_once_and_shows_its_answer(organization, broker, client):
    vehicle_id = approved_fleet(organization, 1)[0]
    vehicle = Vehicle.objects.get(pk=vehicle_id)
    schedule.sync_schedule()  # its scheduled pull is minutes away
    assert pull.request_refresh(vehicle) is True
    assert pull.request_refresh(vehicle) is False  # once
    status = pull.get_pull_status(vehicle)
    assert status["state"] == "queued" and status["requested"]
    assert pull.pull_is_waiting(status, requested_only=True)  # the panel says "Refreshing…"
    assert [message[1] for message in broker.messages] == [tasks.pull_vehicle_telemetry]
    broker.deliver_due()
    assert client.calls == [vehicle.vin]
    status = pull.get_pull_status(vehicle)
    assert (status["state"], status["requested"]) == ("ok", True)
    assert status["message"].startswith("Received")
    row = TelemetryPull.objects.get(vehicle_id=vehicle_id)
    assert row.requested_at is None and row.next_attempt_at > NOW + timedelta(seconds=200)
    # A second Refresh later is a new request.
    assert pull.request_refresh(vehicle) is True


@time_machine.travel(NOW, tick=False)
def test_a_lane_whose_broker_is_down_is_woken_again_later(organization, monkeypatch, settings):
    settings.TELEMETRY_PULL_WAKERS = 1
    approved_fleet(organization, 1)
    schedule.sync_schedule()
    TelemetryPull.objects.update(next_attempt_at=NOW)

    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.pull_due_telemetry, "apply_async", down)
    monkeypatch.setattr("django.db.transaction.on_commit", lambda callback, *a, **kw: callback())
    work.reconcile()
    assert PullWaker.objects.get(lane=0).awake_until <= NOW  # asleep: the next round tries
    assert schedule.due_lanes(NOW) == [0]


@time_machine.travel(NOW, tick=False)
def test_an_unexpected_error_backs_off_that_vehicle_and_the_lane_goes_on(organization, monkeypatch):
    approved_fleet(organization, 2)
    calls: list[str] = []

    class Broken(FakeClient):
        def get_vehicle_data(self, vin):
            calls.append(vin)
            if len(calls) == 1:
                raise RuntimeError("a bug")
            return sample("rest_full.json")

    monkeypatch.setattr(pull, "_client_for", lambda credential: Broken(None))
    schedule.sync_schedule()
    TelemetryPull.objects.update(next_attempt_at=NOW)
    assert schedule.pull_due(pull.fetch) == (2, False)
    outcomes = sorted(TelemetryPull.objects.values_list("outcome", "attempts"))
    assert outcomes == [("ok", 0), ("retrying", 1)]
