"""The clearance state machine of DESIGN.md §4, in one place.

Every status change of a ``Clearance`` goes through ``apply_status`` (one row, under a row lock)
or ``apply_changes`` (many rows, written in bulk by the caller's transaction). Both use
``decide``, which validates the move and keeps late, duplicated and reordered news out:

* A move the graph does not allow is refused (logged, nothing written) -- unless HM dated it
  after everything we applied AND the graph leads there from the current status: HM's timeline
  is the truth, the steps in between were missed (never out of or into the local ``queued``,
  never backward: ``approved -> pending`` or ``revoked -> revoking`` is not a missed step).
* The same status again is a duplicate: nothing is recorded (HM's newer timestamp is kept).
* News is stale, and ignored, when
  - HM dated it (changelog ``timestamp``) no later than the last HM change we applied
    (``hm_changed_at``; HM time compared with HM time only), or
  - we learnt it (webhook received, sync started, our call made) before we learnt the current
    status (``status_known_at``; our clock compared with our clock only).
  Webhooks and POST/DELETE answers carry no HM timestamp, so for them the second rule and the
  graph do the ordering -- and ``hm_changed_at`` lags behind such statuses. A sync therefore
  replays HM's changelog only from the latest entry for the status we already have (see
  ``clearance.changelog``), never the steps that led to it.
* A status HM invents tomorrow is stored raw and logged, never a crash; from an unknown status
  any HM status is accepted again.

Moves (``queued`` is local: saved by us, not yet sent)::

    queued    -> pending | approved | rejected | error
    pending   -> approved | rejected | canceling | canceled | error
    approved  -> revoking | revoked
    revoking  -> revoked
    canceling -> canceled
    rejected | revoked | canceled | error -> queued      (re-onboard)
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from clearance import statuses
from clearance.models import Clearance, ClearanceEvent, ClearanceStatus
from vehicles import events as fleet_events

logger = logging.getLogger(__name__)

S = ClearanceStatus
QUEUED = S.QUEUED.value
HM_STATUSES: frozenset[str] = frozenset(
    s.value for s in S if s != S.QUEUED
)  # what HM can report (``error`` only in a POST answer)
KNOWN_STATUSES: frozenset[str] = frozenset(s.value for s in S)

ALLOWED_MOVES: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.PENDING, S.APPROVED, S.REJECTED, S.ERROR}),
    S.PENDING: frozenset({S.APPROVED, S.REJECTED, S.CANCELING, S.CANCELED, S.ERROR}),
    S.APPROVED: frozenset({S.REVOKING, S.REVOKED}),
    S.REVOKING: frozenset({S.REVOKED}),
    S.CANCELING: frozenset({S.CANCELED}),
    S.REJECTED: frozenset({S.QUEUED}),
    S.REVOKED: frozenset({S.QUEUED}),
    S.CANCELED: frozenset({S.QUEUED}),
    S.ERROR: frozenset({S.QUEUED}),
}
ALLOWED_MOVES = {str(k): frozenset(str(v) for v in vs) for k, vs in ALLOWED_MOVES.items()}


def _forward_reach() -> dict[str, frozenset[str]]:
    """Every status the graph leads to from each status in one or more moves, never through
    the local ``queued`` (a new round is ours to start, not a step HM's news can skip)."""
    reach: dict[str, frozenset[str]] = {}
    for start in ALLOWED_MOVES:
        seen: set[str] = set()
        stack = [start]
        while stack:
            for nxt in ALLOWED_MOVES.get(stack.pop(), frozenset()):
                if nxt != QUEUED and nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        reach[start] = frozenset(seen)
    return reach


# Where missed steps can lead: pending -> revoked (approved and revoking missed) is forward;
# approved -> pending or revoked -> revoking is backward and never a missed step.
FORWARD: dict[str, frozenset[str]] = _forward_reach()

# bulk_update writes CASE WHEN per field: cost grows with batch size squared, keep it small.
BULK_UPDATE_BATCH = 250

# The status sets are clearance.statuses' (one place); the moves above are ours.
REONBOARDABLE = statuses.REONBOARDABLE

Source = ClearanceEvent.Source


def normalise(status: object) -> str:
    """HM's spelling to ours: known values lower-cased, unknown values kept as they came."""
    text = "" if status is None else str(status).strip()
    return text.lower() if text.lower() in KNOWN_STATUSES else text


def is_known(status: str) -> bool:
    return status in KNOWN_STATUSES


def can_move(from_status: str, to_status: str) -> bool:
    """Whether the graph allows ``from_status -> to_status`` (unknown statuses included)."""
    if from_status == to_status:
        return False
    if not to_status:
        return False
    if to_status == QUEUED:
        return from_status in REONBOARDABLE or not is_known(from_status)
    if not is_known(to_status):
        return True  # stored raw, logged
    if not is_known(from_status):
        return to_status in HM_STATUSES
    return to_status in ALLOWED_MOVES.get(from_status, frozenset())


def leads_to(from_status: str, to_status: str) -> bool:
    """Whether the graph leads from ``from_status`` to ``to_status`` in one or more moves
    without passing through ``queued`` (known statuses only)."""
    return to_status in FORWARD.get(from_status, frozenset())


class Outcome(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    FORBIDDEN = "forbidden"


@dataclass(frozen=True)
class Change:
    """One piece of news about a clearance.

    ``at``: HM's time of the change when HM said (changelog), else None.
    ``learned_at``: our clock, when we learnt it (defaults to now).
    ``description``: HM's explanation to keep on the clearance (None keeps the current one).
    ``force``: a sync that found HM elsewhere than the graph allows (skips the graph check only).
    """

    status: str
    source: str
    at: datetime | None = None
    learned_at: datetime | None = None
    actor: Any = None
    detail: str = ""
    description: str | None = None
    force: bool = False


@dataclass
class Decision:
    outcome: Outcome
    event: ClearanceEvent | None = None
    dirty: bool = False  # the in-memory clearance changed and must be saved
    reason: str = ""


UPDATE_FIELDS = [
    "status",
    "status_changed_at",
    "hm_changed_at",
    "status_known_at",
    "description",
    "last_error",
    "last_error_at",
    "requested_at",
    "last_synced_at",
]


def decide(clearance: Clearance, change: Change, *, now: datetime | None = None) -> Decision:
    """Validate ``change`` against ``clearance`` and apply it IN MEMORY (nothing is saved).

    Returns the outcome, the unsaved event (when applied) and whether the row must be written.
    """
    now = now or timezone.now()
    new = normalise(change.status)
    current = clearance.status
    learned_at = change.learned_at or now
    at = change.at

    if not new:
        return Decision(Outcome.FORBIDDEN, reason="empty status")

    if at is not None and clearance.hm_changed_at is not None and at <= clearance.hm_changed_at:
        return Decision(Outcome.STALE, reason="HM dated it before the last applied change")
    if clearance.status_known_at is not None and learned_at < clearance.status_known_at:
        return Decision(Outcome.STALE, reason="learnt before the current status")

    if new == current:
        dirty = False
        if at is not None and (clearance.hm_changed_at is None or at > clearance.hm_changed_at):
            clearance.hm_changed_at = at
            dirty = True
        if change.description and change.description != clearance.description:
            clearance.description = change.description
            dirty = True
        return Decision(Outcome.DUPLICATE, dirty=dirty, reason="same status")

    detail = change.detail
    allowed = change.force or can_move(current, new)
    if not allowed and at is not None and QUEUED not in (current, new) and leads_to(current, new):
        # HM dated it after everything we applied (checked above) and the graph leads there:
        # its timeline is the truth, the steps in between were missed (e.g. webhooks lost or
        # delivered out of order). A backward move is never let through this way: our current
        # status may have come undated (webhook, POST/DELETE answer), so ``hm_changed_at`` can
        # lag behind it and an older changelog step would look "newer" than what we applied.
        allowed = True
        logger.info(
            "Clearance %s: %s -> %s dated by HM after our last change; steps in between missed",
            clearance.pk,
            current,
            new,
        )
        detail = detail or f"High Mobility reports {new}; the steps in between were missed."
    if not allowed:
        logger.info(
            "Clearance %s: refused move %s -> %s from %s",
            clearance.pk,
            current,
            new,
            change.source,
        )
        return Decision(Outcome.FORBIDDEN, reason=f"{current} -> {new} is not allowed")

    if not is_known(new):
        logger.warning(
            "Clearance %s: HM reported an unknown status %r (stored as it came)",
            clearance.pk,
            new,
        )
        detail = detail or f"High Mobility reported a status FleetPortal does not know: {new!r}."

    clearance.status = new
    clearance.status_changed_at = at or learned_at
    clearance.status_known_at = learned_at
    if at is not None and (clearance.hm_changed_at is None or at > clearance.hm_changed_at):
        clearance.hm_changed_at = at
    if new == QUEUED:
        clearance.description = ""
    elif change.description is not None:
        clearance.description = change.description
    if new != S.ERROR:
        clearance.last_error = ""
        clearance.last_error_at = None
    if change.source == Source.POLL:
        clearance.last_synced_at = learned_at
    event = ClearanceEvent(
        clearance=clearance,
        from_status=current,
        to_status=new,
        at=at or learned_at,
        source=change.source,
        actor=change.actor,
        detail=detail,
    )
    return Decision(Outcome.APPLIED, event=event, dirty=True)


def apply_status(
    clearance: Clearance,
    new_status: str,
    *,
    at: datetime | None,
    source: str,
    actor: Any = None,
    detail: str = "",
    learned_at: datetime | None = None,
    description: str | None = None,
) -> bool:
    """Apply one move to one clearance, under a row lock; True when the status changed.

    ``at`` is HM's time of the change (None when HM gave none: webhooks, POST/DELETE answers,
    user actions); ``learned_at`` is when we learnt it on our clock (default: now). The
    passed instance is refreshed with what was stored.
    """
    change = Change(
        status=new_status,
        source=source,
        at=at,
        learned_at=learned_at,
        actor=actor,
        detail=detail,
        description=description,
    )
    return apply_change(clearance, change).outcome is Outcome.APPLIED


def apply_change(clearance: Clearance, change: Change) -> Decision:
    with transaction.atomic():
        locked = Clearance.objects.select_for_update(of=("self",)).get(pk=clearance.pk)
        decision = decide(locked, change)
        if decision.dirty:
            locked.save(update_fields=UPDATE_FIELDS)
        if decision.event is not None:
            decision.event.clearance = locked
            decision.event.save()
            publish_changes([decision.event])
    for name in UPDATE_FIELDS:
        setattr(clearance, name, getattr(locked, name))
    return decision


@dataclass
class BulkResult:
    applied: int = 0
    duplicate: int = 0
    stale: int = 0
    forbidden: int = 0
    changed: list[Clearance] = field(default_factory=list)
    events: list[ClearanceEvent] = field(default_factory=list)
    moves: list[tuple[Clearance, str, str]] = field(default_factory=list)  # (row, from, to)

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)


def apply_changes(
    pairs: Iterable[tuple[Clearance, Change]],
    *,
    extra_fields: Sequence[str] = (),
    touched: Iterable[Clearance] = (),
    now: datetime | None = None,
) -> BulkResult:
    """The bulk variant: decide every change in memory, then ONE bulk update + ONE bulk insert.

    The caller holds the rows (``select_for_update`` in its transaction). Several changes for
    the same clearance are applied in the given order. ``extra_fields``: other fields the caller
    changed on the rows and wants written with them; ``touched``: rows the caller changed that
    must be written even if no move applies to them.
    """
    now = now or timezone.now()
    result = BulkResult()
    changed: dict[int, Clearance] = {row.pk: row for row in touched}
    for clearance, change in pairs:
        before = clearance.status
        decision = decide(clearance, change, now=now)
        result.count(decision.outcome)
        if decision.dirty:
            changed[clearance.pk] = clearance
        if decision.event is not None:
            result.events.append(decision.event)
            result.moves.append((clearance, before, clearance.status))
    result.changed = list(changed.values())
    if result.changed:
        bulk_write(result.changed, [*UPDATE_FIELDS, *extra_fields])
    if result.events:
        ClearanceEvent.objects.bulk_create(result.events, batch_size=1000)
        publish_changes(result.events)
    return result


def publish_changes(recorded: Sequence[ClearanceEvent]) -> None:
    """Tell the fleet's listeners (alerts, outgoing webhooks) about recorded moves, in the
    transaction that recorded them (see vehicles/events.py)."""
    fleet_events.publish(
        [
            fleet_events.ClearanceChanged(
                vehicle_id=event.clearance.vehicle_id,
                from_status=event.from_status,
                to_status=event.to_status,
                at=event.at,
                source=event.source,
                detail=event.detail,
                reason=event.clearance.description or event.clearance.last_error,
            )
            for event in recorded
        ]
    )


def publish_new(
    vehicle_ids: Sequence[int], *, to_status: str, at: datetime, source: str, detail: str
) -> None:
    """``publish_changes`` for clearances just created by a set-based insert (no model objects:
    a new clearance has no reason yet)."""
    fleet_events.publish(
        [
            fleet_events.ClearanceChanged(
                vehicle_id=vehicle_id,
                from_status="",
                to_status=to_status,
                at=at,
                source=source,
                detail=detail,
            )
            for vehicle_id in vehicle_ids
        ]
    )


def bulk_write(rows: Sequence[Clearance], field_names: Sequence[str]) -> None:
    """Write the given fields of many clearances: one ``UPDATE ... FROM (VALUES ...)`` per
    1,000 rows on PostgreSQL (Django's bulk_update spends seconds building CASE expressions
    for 10,000 rows); ``bulk_update`` elsewhere."""
    if connection.vendor != "postgresql":
        Clearance.objects.bulk_update(rows, list(field_names), batch_size=BULK_UPDATE_BATCH)
        return
    # Concrete columns of Clearance (never a reverse relation).
    fields: list[Field[Any, Any]] = [
        Clearance._meta.get_field(name)  # type: ignore[misc]
        for name in field_names
    ]
    table = connection.ops.quote_name(Clearance._meta.db_table)
    pk = Clearance._meta.pk
    casts = [pk.db_type(connection), *(f.db_type(connection) for f in fields)]
    names = [str(pk.column), *(str(f.column) for f in fields)]
    quoted = [connection.ops.quote_name(n) for n in names]
    assignments = ", ".join(f"{q} = v.{q}" for q in quoted[1:])
    row_sql = "(" + ", ".join(f"%s::{cast}" for cast in casts) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            params: list[Any] = []
            for row in chunk:
                params.append(row.pk)
                for f in fields:
                    params.append(f.get_db_prep_save(getattr(row, f.attname), connection))
            values = ", ".join([row_sql] * len(chunk))
            cursor.execute(
                f"UPDATE {table} AS c SET {assignments} FROM (VALUES {values}) "  # noqa: S608
                f"AS v({', '.join(quoted)}) WHERE c.{quoted[0]} = v.{quoted[0]}",
                params,
            )
