"""The pull schedule: durable work (``durable/__init__.py``) that never floods the broker.

Every approved vehicle with a credential has one ``TelemetryPull`` row, due at its next pull.
A few waker chains (``TELEMETRY_PULL_WAKERS`` lanes, one message each) claim due rows a batch at
a time, pull them and schedule each vehicle's next pull one interval later; a transient failure
backs off per vehicle, never sooner than HM's retry-after. So the broker holds at most one
message per lane (plus Refresh clicks), at 10 vehicles or 100,000.

Lanes, not ``durable.work.keep_going`` alone: this work is never finished (something is always
due within the reconciler interval), so a chain the reconciler started beside a live one would
live on beside it, one more every interval. A lane's token names its one live message.
"""

from __future__ import annotations

import itertools
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import (
    BooleanField,
    Case,
    DateTimeField,
    F,
    Q,
    QuerySet,
    Value,
    When,
)
from django.utils import timezone

from clearance import statuses
from durable import work
from durable.models import WorkState
from telemetry import tasks
from telemetry.models import PullWaker, TelemetryPull
from vehicles.models import Vehicle

logger = logging.getLogger(__name__)

# A lane starts no new pull after this many seconds of a batch, so its tasks stay short.
BATCH_SECONDS = 60
# How long a started lane message holds its lane: its task's time limit (telemetry.tasks).
LANE_HOLD_SECONDS = 270


def pulls() -> QuerySet[TelemetryPull]:
    return TelemetryPull.objects.all()


def lease_seconds() -> float:
    """Longest one claimed pull may take: a token and a GET at their slowest."""
    return 2 * (settings.HM_CONNECT_TIMEOUT + settings.HM_READ_TIMEOUT) + 15


def next_pull_at(now: datetime) -> datetime:
    """One interval from now, give or take 5 %: pulls stay spread as the interval passes."""
    interval = settings.TELEMETRY_PULL_INTERVAL_SECONDS
    return now + timedelta(seconds=interval * random.uniform(0.95, 1.05))


# --- Keeping the schedule in step with approvals --------------------------------------------
def approved_vehicles() -> QuerySet[Vehicle]:
    return Vehicle.objects.filter(
        clearance__status__in=statuses.DATA_FLOWS, clearance__credential__isnull=False
    )


def sync_schedule() -> tuple[int, int]:
    """Add a row for every newly approved vehicle, first due at a random point of the next
    interval (a fleet approved at once is pulled spread out), and delete the rows of vehicles
    no longer approved. Set-based: two queries and one INSERT per 1,000 new vehicles.
    Returns (added, removed)."""
    removed, _ = pulls().exclude(vehicle_id__in=approved_vehicles().values("pk")).delete()
    missing = (
        approved_vehicles()
        .filter(telemetry_pull__isnull=True)
        .order_by()
        .values_list("pk", flat=True)
    )
    now = timezone.now()
    interval = settings.TELEMETRY_PULL_INTERVAL_SECONDS
    added = 0
    for chunk in itertools.batched(missing.iterator(chunk_size=1000), 1000):
        rows = [
            TelemetryPull(
                vehicle_id=pk, next_attempt_at=now + timedelta(seconds=random.uniform(0, interval))
            )
            for pk in chunk
        ]
        added += len(TelemetryPull.objects.bulk_create(rows, ignore_conflicts=True))
    return added, removed


def row_for(vehicle_id: int) -> TelemetryPull:
    """The vehicle's row (created due now when the schedule has not caught up yet)."""
    row, _ = TelemetryPull.objects.get_or_create(vehicle_id=vehicle_id)
    return row


def make_due(vehicle_id: int) -> None:
    """Pull this vehicle as soon as possible (a pull under way is left to finish)."""
    row = row_for(vehicle_id)
    TelemetryPull.objects.filter(pk=row.pk).filter(
        ~Q(state=WorkState.RUNNING) | Q(next_attempt_at__lte=timezone.now())
    ).update(state=WorkState.PENDING, next_attempt_at=timezone.now(), claim="")


# --- Doing due pulls ------------------------------------------------------------------------
Pull = Callable[[int], Any]  # vehicle id -> pull.PullOutcome


def pull_due(
    do_pull: Pull, *, batch_size: int | None = None, stop: Callable[[], bool] | None = None
) -> tuple[int, bool]:
    """Up to ``batch_size`` due pulls (for at most ``BATCH_SECONDS``), each claimed on its own so
    a worker killed mid-pull holds one vehicle for one short lease. Returns (pulls done, whether
    more are due now)."""
    batch_size = batch_size or settings.TELEMETRY_PULL_BATCH_SIZE
    deadline = timezone.now() + timedelta(seconds=BATCH_SECONDS)
    done = 0
    while done < batch_size and timezone.now() < deadline:
        if stop is not None and stop():
            break
        if not pull_one(pulls(), do_pull):
            return done, False
        done += 1
    return done, work.due(pulls()).exists()


def pull_one(queryset: QuerySet[TelemetryPull], do_pull: Pull) -> bool:
    """Claim one due row of ``queryset``, pull it and record the outcome. False: none was due."""
    row = work.claim(queryset, limit=1, lease_seconds=lease_seconds()).first()
    if row is None:
        return False
    started = timezone.now()
    try:
        outcome = do_pull(row.vehicle_id)
    except SoftTimeLimitExceeded:
        raise  # the row's lease ends soon; the next lane message takes it
    except Exception:
        # One vehicle's unexpected error must not stop the lane: it backs off like a 5xx.
        logger.exception("Telemetry pull of vehicle %s failed", row.vehicle_id)
        outcome = Unexpected()
    finish(row, outcome, started=started)
    return True


@dataclass(frozen=True)
class Unexpected:
    ok: bool = False
    message: str = "Something went wrong while asking High Mobility; trying again shortly."
    retryable: bool = True
    retry_after: float | None = None


def finish(row: TelemetryPull, outcome: Any, *, started: datetime) -> None:
    """Record a pull's outcome on its row and schedule the next one.

    Done (data, or an answer a retry would not change, such as a sleeping vehicle): due again one
    interval later. A transient failure (5xx, timeout, 429): due after this vehicle's own backoff.
    A Refresh pressed before the pull started is answered by it; one pressed during it gets a
    pull of its own at once."""
    now = timezone.now()
    fields: dict[str, Any] = {
        "state": WorkState.PENDING,
        "claim": "",
        "outcome_message": outcome.message,
        "outcome_at": now,
    }
    if outcome.retryable:
        delay = work.backoff(row.attempts, getattr(outcome, "retry_after", None))
        fields |= {
            "outcome": TelemetryPull.Outcome.RETRYING,
            "last_error": outcome.message,
            "next_attempt_at": now + timedelta(seconds=delay),
        }
    else:
        fields |= {
            "outcome": TelemetryPull.Outcome.OK if outcome.ok else TelemetryPull.Outcome.FAILED,
            "attempts": 0,
            "last_error": "",
            "next_attempt_at": next_pull_at(now),
        }
    # One UPDATE; its conditions read the row as it was (a Refresh pressed meanwhile counts).
    answers_refresh = Q(requested_at__lte=started)
    when = DateTimeField()
    fields["next_attempt_at"] = Case(
        When(requested_at__gt=started, then=Value(now)),
        default=Value(fields["next_attempt_at"]),
        output_field=when,
    )
    fields["outcome_requested"] = Case(
        When(answers_refresh, then=Value(True)), default=Value(False), output_field=BooleanField()
    )
    if not outcome.retryable:  # answered; a retry keeps the Refresh waiting
        fields["requested_at"] = Case(
            When(answers_refresh, then=Value(None)), default=F("requested_at"), output_field=when
        )
    TelemetryPull.objects.filter(pk=row.pk).update(**fields)


# --- Lanes: the waker chains ----------------------------------------------------------------
def lanes() -> range:
    return range(settings.TELEMETRY_PULL_WAKERS)


def due_lanes(now: datetime) -> list[int]:
    """The reconciler's keys: the lanes without a live message, when some pull is due."""
    if not work.due(pulls(), now).exists():
        return []
    awake = set(
        PullWaker.objects.filter(lane__in=lanes(), awake_until__gt=now).values_list(
            "lane", flat=True
        )
    )
    return [lane for lane in lanes() if lane not in awake]


def wake(lane: int, *, countdown: float = 0.0, token: str | None = None) -> bool:
    """Send the lane's next message: only if the lane sleeps (``token`` None: the reconciler,
    a nudge) or is still held by ``token`` (a chain's continuation), once the transaction
    commits. Returns whether a message is on its way.

    The lane stays awake for the countdown plus one reconciler interval of queueing; a message
    that has not started by then counts as lost and the reconciler sends a new one."""
    now = timezone.now()
    new = uuid.uuid4().hex
    grace = settings.RECONCILE_INTERVAL_SECONDS
    lane_rows = PullWaker.objects.filter(lane=lane)
    if token is None:
        PullWaker.objects.get_or_create(lane=lane, defaults={"awake_until": now})
        lane_rows = lane_rows.filter(awake_until__lte=now)
    else:
        lane_rows = lane_rows.filter(token=token)
    if not lane_rows.update(token=new, awake_until=now + timedelta(seconds=countdown + grace)):
        return False
    transaction.on_commit(partial(_send, lane, new, countdown))
    return True


def _send(lane: int, token: str, countdown: float) -> None:
    options = {"countdown": countdown} if countdown > 0 else {}
    send = partial(tasks.pull_due_telemetry.apply_async, (lane, token), **options)
    if not work.send_quietly(send, f"telemetry pull lane {lane}"):
        # The broker is down: asleep again, so the reconciler tries once it is back.
        PullWaker.objects.filter(lane=lane, token=token).update(awake_until=timezone.now())


def wake_if_asleep(lane: int) -> None:
    """The reconciler's wake: a message for the lane, unless it has a live one."""
    wake(lane)


def nudge() -> None:
    """Wake lane 0, if it sleeps, for the next pull due within a reconciler interval."""
    at = work.next_due_at(pulls())
    if at is not None:
        delay = max((at - timezone.now()).total_seconds(), 0.0)
        if delay <= settings.RECONCILE_INTERVAL_SECONDS:
            wake(0, countdown=delay)


def hold(lane: int, token: str) -> bool:
    """A lane's message starts: False when its token is stale (do nothing); otherwise the lane
    is held for the length of a task."""
    return bool(
        PullWaker.objects.filter(lane=lane, token=token).update(
            awake_until=timezone.now() + timedelta(seconds=LANE_HOLD_SECONDS)
        )
    )


def carry_on(lane: int, token: str, *, more: bool) -> None:
    """After a lane's batch: more due now, so go on at once (and wake the sleeping lanes, a
    backlog is theirs too); else lane 0 waits for the next pull due within a reconciler
    interval; otherwise the lane sleeps and the reconciler wakes it when pulls are due."""
    if more:
        wake(lane, token=token)
        for other in lanes():
            if other != lane:
                wake(other)
        return
    at = work.next_due_at(pulls())
    if lane == 0 and at is not None:
        delay = max((at - timezone.now()).total_seconds(), 0.0)
        if delay <= settings.RECONCILE_INTERVAL_SECONDS:
            wake(lane, countdown=delay, token=token)
            return
    PullWaker.objects.filter(lane=lane, token=token).update(awake_until=timezone.now())
