"""The scheduled pull: no backlog (the "already queued" marker), spread over the interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache

from telemetry import pull, tasks
from tests.factories import ClearanceFactory

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
LOCK = "telemetry:pull-approved:lock"


@pytest.fixture
def sent(monkeypatch) -> list[tuple[int, int]]:
    """(vehicle id, countdown) of every pull the beat job queues."""
    out: list[tuple[int, int]] = []

    def apply_async(args, countdown=0, expires=None, **kwargs):
        assert expires is not None and expires > countdown  # a stale pull is dropped
        out.append((args[0], countdown))

    monkeypatch.setattr(tasks.pull_vehicle_telemetry, "apply_async_on_commit", apply_async)
    return out


@pytest.fixture
def fleet(organization):
    return [
        ClearanceFactory(vehicle__organization=organization, status="approved").vehicle
        for _ in range(4)
    ]


def run_beat() -> int:
    cache.delete(LOCK)  # the next scheduled run (the overlap lock is tested on its own)
    return tasks.pull_approved_vehicles.run()


@time_machine.travel(NOW, tick=False)
def test_it_queues_only_approved_vehicles_and_skips_overlapping_runs(organization, sent):
    approved = ClearanceFactory(vehicle__organization=organization, status="approved")
    ClearanceFactory(vehicle__organization=organization, status="pending")
    assert run_beat() == 1
    assert [vehicle_id for vehicle_id, _ in sent] == [approved.vehicle_id]
    cache.delete(pull._status_key(approved.vehicle.public_id))  # the pull is done
    assert tasks.pull_approved_vehicles.run() == 0  # overlapping run skipped (lock still held)
    assert len(sent) == 1


@time_machine.travel(NOW, tick=False)
def test_a_vehicle_whose_pull_still_waits_is_not_queued_again(fleet, sent, settings):
    settings.TELEMETRY_PULL_INTERVAL_SECONDS = 300
    assert run_beat() == 4
    # The worker is stopped: nothing ran. The next runs add nothing to the queue.
    with time_machine.travel(NOW + timedelta(seconds=300), tick=False):
        assert run_beat() == 0
    assert len(sent) == 4
    # One pull ran and finished; only that vehicle is due again.
    with time_machine.travel(NOW + timedelta(seconds=310), tick=False):
        pull.set_pull_status(fleet[0], "ok", "Received 12 values from High Mobility.")
        assert run_beat() == 1
    assert sent[-1][0] == fleet[0].pk


@time_machine.travel(NOW, tick=False)
def test_a_refresh_waiting_or_a_pull_running_counts_as_queued(fleet, sent, monkeypatch):
    monkeypatch.setattr(tasks.pull_vehicle_telemetry, "delay_on_commit", lambda *a, **kw: None)
    assert pull.request_refresh(fleet[0]) is True
    pull.set_pull_status(fleet[1], "running", "Waiting for High Mobility…")
    pull.set_pull_status(fleet[2], "retrying", "Trying again shortly.")
    pull.set_pull_status(fleet[3], "failed", "The vehicle is offline or asleep.")
    assert run_beat() == 1
    assert [vehicle_id for vehicle_id, _ in sent] == [fleet[3].pk]


@time_machine.travel(NOW, tick=False)
def test_a_lost_pull_does_not_block_a_vehicle_for_good(fleet, sent, settings):
    settings.TELEMETRY_PULL_INTERVAL_SECONDS = 300
    assert run_beat() == 4
    # The tasks were lost (say the broker was wiped) or are too late to be worth running:
    # 1.5 intervals after its planned start a pull expires and the vehicle is queued again.
    with time_machine.travel(NOW + timedelta(seconds=600), tick=False):
        assert run_beat() == 3  # countdowns 0, 75 and 150: expired at 450, 525 and 600
    assert [vehicle_id for vehicle_id, _ in sent[4:]] == [v.pk for v in fleet[:3]]
    with time_machine.travel(NOW + timedelta(seconds=900), tick=False):
        assert run_beat() == 1  # countdown 225: expired at 675; the others were just queued
    assert sent[-1][0] == fleet[3].pk


@time_machine.travel(NOW, tick=False)
def test_pulls_are_spread_over_the_interval(fleet, sent, settings):
    settings.TELEMETRY_PULL_INTERVAL_SECONDS = 300
    run_beat()
    countdowns = [countdown for _, countdown in sent]
    assert countdowns == [0, 75, 150, 225]


@time_machine.travel(NOW, tick=False)
def test_a_scheduled_pull_expires_when_its_marker_lapses(fleet, settings, monkeypatch):
    settings.TELEMETRY_PULL_INTERVAL_SECONDS = 300
    options: list[dict] = []
    monkeypatch.setattr(
        tasks.pull_vehicle_telemetry,
        "apply_async_on_commit",
        lambda args, **kw: options.append(kw),
    )
    run_beat()
    assert [o["expires"] for o in options] == [450, 525, 600, 675]
    status = pull.get_pull_status(fleet[3])
    assert datetime.fromisoformat(status["until"]) == NOW + timedelta(seconds=675)


@time_machine.travel(NOW, tick=False)
def test_the_spread_stays_below_the_broker_visibility_timeout(fleet, sent, settings):
    settings.TELEMETRY_PULL_INTERVAL_SECONDS = 7200
    run_beat()
    assert max(countdown for _, countdown in sent) < tasks.MAX_SPREAD_SECONDS < 3600


@time_machine.travel(NOW, tick=False)
def test_the_refresh_button_does_not_wait_for_a_scheduled_pull(fleet, sent, monkeypatch):
    refreshed: list[int] = []

    def delay_on_commit(vehicle_id, requested=False, on_error=None):
        assert requested is True  # its answer is shown as "Refreshed: ..."
        refreshed.append(vehicle_id)

    monkeypatch.setattr(tasks.pull_vehicle_telemetry, "delay_on_commit", delay_on_commit)
    run_beat()
    assert pull.pull_is_waiting(pull.get_pull_status(fleet[3]))
    # The scheduled pull may start minutes from now; the user asked for data now.
    assert pull.request_refresh(fleet[3]) is True
    assert pull.request_refresh(fleet[3]) is False  # but only once
    assert refreshed == [fleet[3].pk]
