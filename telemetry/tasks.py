"""Thin Celery tasks for telemetry: take ids, call a service.

Pulls are durable work (``telemetry/schedule.py``): the tasks are idempotent wakers that claim
due rows of the pull schedule; the reconciler replaces lost ones.
"""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from clearance.work import DURABLE_TASK, BackgroundTask
from durable import work
from telemetry import pull, schedule, services


@shared_task(**DURABLE_TASK, soft_time_limit=240, time_limit=270)
def pull_due_telemetry(self: BackgroundTask, lane: int, token: str) -> None:
    """Waker of one lane: pull a batch of due vehicles, then carry on while more is due (a
    message whose token the lane no longer holds does nothing)."""
    if not schedule.hold(lane, token):
        return
    try:
        _done, more = schedule.pull_due(pull.fetch, stop=work.stopping)
    except OperationalError as exc:  # SQLite "database is locked" under concurrent writers
        self.retry_busy_database(exc)
    schedule.carry_on(lane, token, more=more)


@shared_task(**DURABLE_TASK, soft_time_limit=60, time_limit=90)
def pull_vehicle_telemetry(self: BackgroundTask, vehicle_id: int, requested: bool = False) -> None:
    """Pull one vehicle now: the Refresh button (``requested``, its row already due) or anyone
    who wants fresh data. Its row's claim keeps two pulls of one vehicle from running at once;
    a transient failure is retried by the lanes after the vehicle's backoff."""
    if not requested:
        schedule.make_due(vehicle_id)
    try:
        schedule.pull_one(schedule.pulls().filter(vehicle_id=vehicle_id), pull.fetch)
    except OperationalError as exc:
        self.retry_busy_database(exc)
    schedule.nudge()  # a retry due soon is not left to the next reconciler round


@shared_task(base=BackgroundTask, bind=True, ignore_result=True, soft_time_limit=60, time_limit=90)
def pull_approved_vehicles(self: BackgroundTask) -> tuple[int, int]:
    """Beat, every reconciler interval: keep the pull schedule in step with approvals (the pulls
    themselves are woken by the reconciler). Returns (rows added, rows removed)."""
    added, removed = schedule.sync_schedule()
    if added:
        schedule.nudge()  # the first of them may be due before the reconciler's next round
    return added, removed


@shared_task(base=BackgroundTask, bind=True, soft_time_limit=600, time_limit=660)
def prune_telemetry(self: BackgroundTask) -> int:
    """Beat: delete history older than TELEMETRY_RETENTION_DAYS, in batches."""
    return services.prune_snapshots()
