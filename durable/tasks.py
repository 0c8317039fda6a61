"""The reconciler's beat task (see ``durable/__init__.py``)."""

from __future__ import annotations

from celery import shared_task

from durable import work


@shared_task(ignore_result=True, soft_time_limit=60, time_limit=90)
def reconcile() -> dict[str, int]:
    """Beat, every ``RECONCILE_INTERVAL_SECONDS``: wake whatever durable work is due."""
    return work.reconcile()
