"""Thin Celery tasks for telemetry: take ids, call a service."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache

from vehicles.telemetry import services


@shared_task(bind=True, max_retries=3, soft_time_limit=60, time_limit=90, acks_late=True)
def pull_vehicle_telemetry(self, vehicle_id: int) -> None:
    """Pull one vehicle's data from HM; transient failures (5xx, timeouts, 429) retry."""
    outcome = services.pull_vehicle(vehicle_id)
    if outcome.retryable and self.request.retries < self.max_retries:
        raise self.retry(countdown=min(60, 5 * 2**self.request.retries))


@shared_task(bind=True, soft_time_limit=60, time_limit=90)
def pull_approved_vehicles(self) -> int:
    """Beat: queue a pull for every approved vehicle (overlapping runs are skipped)."""
    from django.conf import settings

    lock_seconds = max(10, settings.TELEMETRY_PULL_INTERVAL_SECONDS // 2)
    if not cache.add("telemetry:pull-approved:lock", "1", timeout=lock_seconds):
        return 0
    ids = services.approved_vehicle_ids()
    for vehicle_id in ids:
        pull_vehicle_telemetry.delay(vehicle_id)
    return len(ids)


@shared_task(bind=True, soft_time_limit=600, time_limit=660)
def prune_telemetry(self) -> int:
    """Beat: delete history older than TELEMETRY_RETENTION_DAYS, in batches."""
    return services.prune_snapshots()
