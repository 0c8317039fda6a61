from celery import shared_task

from api import writes


@shared_task
def purge_idempotency_keys() -> int:
    """Answers to retried writes are kept a day (docs/api.md)."""
    return writes.purge_idempotency_keys()
