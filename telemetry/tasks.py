"""Thin Celery tasks for telemetry: take ids, call a service.

Pulls call HM, so they are queued and retried like every HM task (``clearance.work``).
"""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from clearance.work import HM_TASK, BackgroundTask
from telemetry import pull, services

# Countdowns stay well below the Redis broker's visibility timeout (3600 s): a task held back
# longer would be delivered a second time.
MAX_SPREAD_SECONDS = 1800


@shared_task(**HM_TASK, soft_time_limit=60, time_limit=90)
def pull_vehicle_telemetry(self: BackgroundTask, vehicle_id: int, requested: bool = False) -> None:
    """Pull one vehicle's data from HM; transient failures (5xx, timeouts, 429) retry.

    ``requested``: queued by the Refresh button (its result is shown on the panel).
    """
    outcome = pull.pull_vehicle(vehicle_id, requested=requested)
    if outcome.retryable:
        self.retry_later()


@shared_task(base=BackgroundTask, bind=True, soft_time_limit=60, time_limit=90)
def pull_approved_vehicles(self: BackgroundTask) -> int:
    """Beat: queue a pull for every approved vehicle that has none waiting yet.

    Overlapping runs are skipped. A vehicle whose pull is still queued or running (the same
    marker the Refresh button uses) is not queued again, so a slow or stopped worker does not
    build a backlog; the pulls are spread over the interval so HM's rate limit is not hit in
    one burst. Returns how many pulls were queued.
    """
    interval = settings.TELEMETRY_PULL_INTERVAL_SECONDS
    lock_seconds = max(10, interval // 2)
    if not cache.add("telemetry:pull-approved:lock", "1", timeout=lock_seconds):
        return 0
    vehicles = pull.approved_vehicles()
    waiting = pull.waiting_pulls(public_id for _, public_id in vehicles)
    due = [(pk, public_id) for pk, public_id in vehicles if public_id not in waiting]
    spread = min(interval, MAX_SPREAD_SECONDS)
    for index, (vehicle_id, public_id) in enumerate(due):
        countdown = index * spread // len(due)
        # A pull may start up to 1.5 intervals after its planned time; later it is dropped
        # (expires) and, its marker having lapsed at the same moment, the next run queues a
        # fresh one. So a queue that has not drained by the next run is not added to, a lost
        # task does not block a vehicle for good, and at most one scheduled pull per vehicle
        # can still run. Marked before sending: a task that starts at once then overwrites it.
        valid_for = countdown + interval + interval // 2
        pull.mark_pull_scheduled(public_id, wait=timedelta(seconds=valid_for))
        pull_vehicle_telemetry.apply_async_on_commit(
            (vehicle_id,), countdown=countdown, expires=valid_for
        )
    return len(due)


@shared_task(base=BackgroundTask, bind=True, soft_time_limit=600, time_limit=660)
def prune_telemetry(self: BackgroundTask) -> int:
    """Beat: delete history older than TELEMETRY_RETENTION_DAYS, in batches."""
    return services.prune_snapshots()
