"""Claiming, finishing and waking durable work (the rules are in ``durable/__init__.py``)."""

from __future__ import annotations

import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from durable import shutdown
from durable.models import ACTIVE_STATES, DurableWork, WorkState

logger = logging.getLogger(__name__)


# --- Backoff -------------------------------------------------------------------------------------
def backoff(
    attempts: int,
    retry_after: float | None = None,
    *,
    base: float | None = None,
    ceiling: float | None = None,
) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: exponential from ``base``
    (``DURABLE_RETRY_BASE_SECONDS``), capped at ``ceiling`` (``DURABLE_RETRY_MAX_SECONDS``), full
    jitter (half to all of it), never sooner than ``retry_after`` (the remote side's own wish).
    A kind of work whose remote side wants gentler retries passes its own base and ceiling."""
    base = settings.DURABLE_RETRY_BASE_SECONDS if base is None else base
    ceiling = settings.DURABLE_RETRY_MAX_SECONDS if ceiling is None else ceiling
    longest = min(ceiling, base * 2 ** max(attempts - 1, 0))
    delay = random.uniform(longest / 2, longest)
    if retry_after:
        delay = max(delay, retry_after + random.uniform(0, base))
    return delay


# --- Due rows and claims -------------------------------------------------------------------------
def due[W: DurableWork](queryset: QuerySet[W], now: datetime | None = None) -> QuerySet[W]:
    """The rows of ``queryset`` a worker should do now (pending, or running with a lapsed lease)."""
    return queryset.filter(state__in=ACTIVE_STATES, next_attempt_at__lte=now or timezone.now())


def due_keys[W: DurableWork](
    queryset: QuerySet[W], field: str, now: datetime | None = None
) -> list[Any]:
    """The distinct values of ``field`` among due rows: the keys the reconciler wakes."""
    return list(due(queryset, now).order_by().values_list(field, flat=True).distinct())


def next_due_at[W: DurableWork](queryset: QuerySet[W]) -> datetime | None:
    """When the first not-yet-finished row of ``queryset`` is due (None: nothing left)."""
    return (
        queryset.filter(state__in=ACTIVE_STATES)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )


def claim[W: DurableWork](
    queryset: QuerySet[W], *, limit: int, lease_seconds: float
) -> QuerySet[W]:
    """Claim up to ``limit`` due rows of ``queryset`` (oldest due first) for ``lease_seconds``.

    Returns the claimed rows as a queryset (empty when another worker has them all). Claimed rows
    are ``running``, their ``attempts`` counted and ``next_attempt_at`` at the lease's end. Safe
    against concurrent claimers on PostgreSQL (``SKIP LOCKED``, then a compare-and-set update)
    and on SQLite (its single writer serialises the compare-and-set update).
    """
    now = timezone.now()
    token = uuid.uuid4().hex
    model = queryset.model
    with transaction.atomic():
        candidates = due(queryset, now).order_by("next_attempt_at", "pk")
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        pks = list(candidates.values_list("pk", flat=True)[:limit])
        if pks:
            due(model._default_manager.filter(pk__in=pks), now).update(
                state=WorkState.RUNNING,
                attempts=F("attempts") + 1,
                next_attempt_at=now + timedelta(seconds=lease_seconds),
                claim=token,
            )
    return model._default_manager.filter(pk__in=pks, claim=token)


def lock_due[W: DurableWork](queryset: QuerySet[W], *, limit: int = 1) -> list[W]:
    """For work done wholly inside the caller's transaction: up to ``limit`` due rows of
    ``queryset``, locked until that transaction ends (``SKIP LOCKED``: rows another worker holds
    are skipped). No lease: a worker killed mid-work rolls back and leaves its rows due at once,
    so the next wake (the reconciler's at the latest) resumes them. Without row locks (SQLite)
    the rows are touched first, which takes the single write lock and serialises workers. Call
    inside ``transaction.atomic()``; record the outcome in the same transaction."""
    rows = due(queryset).order_by("next_attempt_at", "pk")
    if connection.features.has_select_for_update_skip_locked:
        return list(rows.select_for_update(skip_locked=True, of=("self",))[:limit])
    pks = list(rows.values_list("pk", flat=True)[:limit])
    manager = queryset.model._default_manager
    manager.filter(pk__in=pks).update(updated_at=timezone.now())
    return list(due(manager.filter(pk__in=pks)))


# --- Outcomes ------------------------------------------------------------------------------------
def _pks(rows: Iterable[DurableWork] | QuerySet[Any]) -> list[Any]:
    if isinstance(rows, QuerySet):
        return list(rows.values_list("pk", flat=True))
    return [row.pk for row in rows]


def complete(
    model: type[DurableWork], rows: Iterable[DurableWork] | QuerySet[Any], words: str = ""
) -> int:
    """The work of these rows is done (``words``: why, when it ended without being carried out,
    e.g. a delivery nobody needs any more)."""
    return model._default_manager.filter(pk__in=_pks(rows)).update(
        state=WorkState.DONE, last_error=words, claim=""
    )


def retry(
    model: type[DurableWork],
    rows: Iterable[DurableWork],
    words: str,
    *,
    retry_after: float | None = None,
    base: float | None = None,
    ceiling: float | None = None,
) -> datetime | None:
    """These rows failed for a passing reason: due again after each one's own backoff (one
    update per distinct attempt count, not per row; ``base`` and ``ceiling`` as in ``backoff``).
    Returns the earliest next attempt."""
    by_attempts: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_attempts[row.attempts].append(row.pk)
    now = timezone.now()
    earliest = None
    for attempts, pks in by_attempts.items():
        delay = backoff(attempts, retry_after, base=base, ceiling=ceiling)
        at = now + timedelta(seconds=delay)
        logger.info(
            "%s: %s row(s) after attempt %s retrying in %.1fs: %s",
            model.__name__,
            len(pks),
            attempts,
            delay,
            words,
        )
        model._default_manager.filter(pk__in=pks).update(
            state=WorkState.PENDING, next_attempt_at=at, last_error=words, claim=""
        )
        earliest = at if earliest is None else min(earliest, at)
    return earliest


def give_up(
    model: type[DurableWork], rows: Iterable[DurableWork] | QuerySet[Any], words: str
) -> int:
    """A permanent error: these rows will not be tried again; ``words`` say why."""
    return model._default_manager.filter(pk__in=_pks(rows)).update(
        state=WorkState.FAILED, last_error=words, claim=""
    )


def reschedule(
    model: type[DurableWork], rows: Iterable[DurableWork] | QuerySet[Any], at: datetime
) -> int:
    """Recurring work (a token's renewal) done for now: the rows are due again at ``at`` as
    fresh work (no attempts, no words), so one row serves the work's whole life."""
    return model._default_manager.filter(pk__in=_pks(rows)).update(
        state=WorkState.PENDING, attempts=0, next_attempt_at=at, last_error="", claim=""
    )


def release(model: type[DurableWork], rows: Iterable[DurableWork] | QuerySet[Any]) -> int:
    """Hand claimed rows back untouched (a worker shutting down): due again at once, the attempt
    not counted."""
    return model._default_manager.filter(pk__in=_pks(rows), state=WorkState.RUNNING).update(
        state=WorkState.PENDING,
        attempts=F("attempts") - 1,
        next_attempt_at=timezone.now(),
        claim="",
    )


# --- Waking --------------------------------------------------------------------------------------
def send_quietly(send: Callable[[], Any], what: str) -> bool:
    """Queue a waker; a broker that cannot be reached is logged, never raised (the work is in
    the database and the reconciler wakes it). Returns whether the message was sent."""
    try:
        send()
    except Exception:
        logger.warning("Could not queue %s; the reconciler will wake it", what, exc_info=True)
        return False
    return True


def wake_on_commit(task: Any, *args: Any, countdown: float | None = None) -> None:
    """Send ``task(*args)`` once the current transaction commits (at once outside one)."""
    options = {"countdown": countdown} if countdown else {}

    def send() -> None:
        send_quietly(lambda: task.apply_async(args, **options), f"{task.name}{args!r}")

    transaction.on_commit(send)


def stopping() -> bool:
    """Whether this worker was asked to stop (warm shutdown): finish the unit at hand, hand
    the rest back (``release``) and return, so a stop never waits for a backlog. A remote call
    in flight is cut short (``durable.shutdown``)."""
    return shutdown.stopping()


def keep_going(task: Any, key: Any, queryset: QuerySet[Any], *, more: bool) -> None:
    """After one batch of ``task(key)``: wake it again at once when more is due now, or with a
    countdown when the next retry is due within one reconciler interval (later ones are the
    reconciler's: long countdowns sit in the broker). Never raises for the broker's sake."""
    delay: float | None = 0.0 if more else None
    if delay is None:
        at = next_due_at(queryset)
        if at is not None:
            delay = max((at - timezone.now()).total_seconds(), 0.0)
            if delay > settings.RECONCILE_INTERVAL_SECONDS:
                return
    if delay is None:
        return
    options = {"countdown": delay} if delay > 0 else {}
    send_quietly(partial(task.apply_async, (key,), **options), f"{task.name}({key!r})")


# --- Registry and reconciler ---------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """A kind of durable work: ``due(now)`` lists the keys with due rows, ``wake(key)`` sends
    the task that does them."""

    name: str
    due: Callable[[datetime], Iterable[Hashable]]
    wake: Callable[[Any], None]


REGISTRY: dict[str, Kind] = {}


def register(
    name: str, *, due: Callable[[datetime], Iterable[Hashable]], wake: Callable[[Any], None]
) -> Kind:
    """Plug a kind of work into the reconciler (call it from the app's ``AppConfig.ready``)."""
    kind = Kind(name, due, wake)
    REGISTRY[name] = kind
    return kind


def reconcile(now: datetime | None = None) -> dict[str, int]:
    """Wake every key of every registered kind that has due work; returns how many per kind.

    One failing kind (its table missing, the broker down) never stops the others."""
    now = now or timezone.now()
    woken: dict[str, int] = {}
    for kind in list(REGISTRY.values()):
        try:
            keys = list(kind.due(now))
        except Exception:
            logger.exception("Reconciler could not list due work of %s", kind.name)
            continue
        sent = 0
        for key in keys:
            if send_quietly(partial(kind.wake, key), f"{kind.name} {key!r}"):
                sent += 1
        woken[kind.name] = sent
        if keys:
            logger.info("Reconciler woke %s of %s key(s) of %s", sent, len(keys), kind.name)
    return woken
