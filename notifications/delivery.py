"""Durable delivery work shared by emails and webhooks: claiming due rows, backoff, giving up.

A row is due when it is pending and its ``next_attempt_at`` has passed. A worker claims one row
at a time by pushing its ``next_attempt_at`` a lease into the future in a short transaction
(``SKIP LOCKED`` on PostgreSQL, SQLite's single writer otherwise), then sends outside any
transaction and records the outcome. A worker that dies mid-send leaves the row due again when
the lease ends: the delivery is repeated (receivers deduplicate on the event id), never lost.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from notifications.models import DeliveryState

# Longest a claimed row stays invisible to other workers: the slowest webhook attempt (connect
# and read timeouts) or an SMTP conversation, with a margin.
LEASE_MARGIN_SECONDS = 30


def lease() -> timedelta:
    return timedelta(
        seconds=settings.OUTGOING_WEBHOOKS_CONNECT_TIMEOUT
        + settings.OUTGOING_WEBHOOKS_READ_TIMEOUT
        + LEASE_MARGIN_SECONDS
    )


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: exponential from
    ``DELIVERY_RETRY_BASE_SECONDS``, capped, with jitter (half to all of it)."""
    base = settings.DELIVERY_RETRY_BASE_SECONDS
    ceiling = min(settings.DELIVERY_RETRY_MAX_SECONDS, base * 2 ** max(attempts - 1, 0))
    return random.uniform(ceiling / 2, ceiling)


def retry_window() -> timedelta:
    return timedelta(hours=settings.DELIVERY_RETRY_HOURS)


def gives_up(created_at: datetime, now: datetime) -> bool:
    """Whether a delivery created at ``created_at`` has been retried long enough."""
    return now - created_at >= retry_window()


def due(model: type[Model], now: datetime | None = None):
    return model._default_manager.filter(
        state=DeliveryState.PENDING, next_attempt_at__lte=now or timezone.now()
    )


def claim_one(model: type[Model]) -> int | None:
    """The id of one due row of ``model``, now leased to this worker; None when none is due."""
    now = timezone.now()
    with transaction.atomic():
        rows = due(model, now).order_by("next_attempt_at", "pk")
        if connection.features.has_select_for_update_skip_locked:
            rows = rows.select_for_update(skip_locked=True)
        pk = rows.values_list("pk", flat=True).first()
        if pk is None:
            return None
        model._default_manager.filter(pk=pk).update(next_attempt_at=now + lease())
    return pk


def next_due_at(model: type[Model]) -> datetime | None:
    return (
        model._default_manager.filter(state=DeliveryState.PENDING)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
