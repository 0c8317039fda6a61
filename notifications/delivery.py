"""What email and webhook deliveries add to durable work (durable/__init__.py): their lease, their
gentler backoff, the 24 hours they are retried for, and the sending loop of a waker.

A worker claims one due row at a time (``durable.work.claim``), sends outside any transaction and
records the outcome. A worker that dies mid-send leaves the row due again when the lease ends:
the delivery is repeated (receivers deduplicate on the event id), never lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet

from durable import work
from notifications.models import Delivery

# Longest a claimed row stays invisible to other workers: the slowest webhook attempt (connect
# and read timeouts) or an SMTP conversation, with a margin.
LEASE_MARGIN_SECONDS = 30


def lease_seconds() -> float:
    return (
        settings.OUTGOING_WEBHOOKS_CONNECT_TIMEOUT
        + settings.OUTGOING_WEBHOOKS_READ_TIMEOUT
        + LEASE_MARGIN_SECONDS
    )


def retry_window() -> timedelta:
    return timedelta(hours=settings.DELIVERY_RETRY_HOURS)


def gives_up(since: datetime, now: datetime) -> bool:
    """Whether something failing since ``since`` has been retried long enough."""
    return now - since >= retry_window()


def retry(model: type[Delivery], row: Delivery, words: str, now: datetime) -> None:
    """A passing failure: tried again after the delivery backoff (``DELIVERY_RETRY_*``: receivers
    and mail servers are given more room than HM), or given up once retried for
    ``DELIVERY_RETRY_HOURS``, with ``words`` and why it stopped."""
    if gives_up(row.created_at, now):
        hours = retry_window().total_seconds() / 3600
        work.give_up(model, [row], f"{words} Not delivered after {hours:g} hours of retries.")
        return
    work.retry(
        model,
        [row],
        words,
        base=settings.DELIVERY_RETRY_BASE_SECONDS,
        ceiling=settings.DELIVERY_RETRY_MAX_SECONDS,
    )


def send_due[D: Delivery](
    queryset: QuerySet[D],
    send_one: Callable[[QuerySet[D]], object],
    *,
    budget_seconds: float,
    stop: Callable[[], bool] = work.stopping,
) -> tuple[int, bool]:
    """Claim and send due rows of ``queryset`` one by one (``send_one`` gets the claimed row as a
    queryset) until none is due, the budget is spent or the worker is asked to stop.

    Returns (attempts made, whether rows may still be due)."""
    deadline = time.monotonic() + budget_seconds
    done = 0
    while time.monotonic() < deadline and not stop():
        claimed = work.claim(queryset, limit=1, lease_seconds=lease_seconds())
        if not claimed.exists():
            return done, False
        send_one(claimed)
        done += 1
    return done, True
