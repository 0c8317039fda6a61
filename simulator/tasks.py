"""Celery tasks of the simulator (thin: ids in, services do the work)."""

from celery import shared_task
from django.core.cache import cache

from . import webhooks


class WebhookNotDelivered(Exception):
    pass


@shared_task(bind=True, ignore_result=True, soft_time_limit=20, time_limit=30)
def tick(self) -> int:
    """Periodic (beat, every few seconds): queue webhooks for time-driven status changes, and
    once in a while again those whose message was lost (the rows are the truth)."""
    changed = webhooks.detect_changes()
    try:
        due = cache.add("simulator:redeliver-waiting", 1, timeout=30)
    except Exception:  # the cache down is no reason to stop redelivering
        due = True
    if due:
        webhooks.redeliver_waiting()
    return changed


@shared_task(
    bind=True,
    ignore_result=True,
    autoretry_for=(WebhookNotDelivered,),
    max_retries=5,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    soft_time_limit=30,
    time_limit=40,
)
def deliver_webhook(self, delivery_id: int) -> None:
    final = self.request.retries >= self.max_retries
    if not webhooks.deliver(delivery_id, final_attempt=final):
        raise WebhookNotDelivered(f"webhook delivery {delivery_id} not accepted")
