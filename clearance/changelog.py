"""HM's side of a sync read as changes: its list item for one clearance (current status and
changelog) becomes the ordered moves the state machine applies, and, rarely, HM's word taken
over the graph when steps were missed."""

from __future__ import annotations

import logging
from datetime import datetime

from clearance.hm import FleetVehicle
from clearance.models import Clearance
from clearance.state import QUEUED, Change, Source, normalise

logger = logging.getLogger(__name__)


def changes_from_hm(
    clearance: Clearance, vehicle: FleetVehicle, *, learned_at: datetime
) -> list[Change]:
    """What a sync learnt about one clearance from HM's list item, as ordered changes.

    For a sent clearance, the changelog is replayed in order from the latest entry whose status
    is the clearance's current status: that entry is news we already applied (perhaps from a
    webhook or an API answer, which carry no HM time), replayed only as a duplicate that records
    HM's time of it; the entries after it are the moves newer than what we know, each validated
    and recorded. Without such an entry (HM does not list our status), from the last
    ``pending`` (the current round). Either way only entries HM dated after ``hm_changed_at``.
    A ``queued`` row only takes HM's current status when it proves our request reached HM
    (a lost answer): pending/approved always, rejected only before any earlier round.
    """
    status = normalise(vehicle.status)
    reason = vehicle.reason
    if clearance.status == QUEUED:
        accept = {"pending", "approved"} | (
            {"rejected"} if clearance.requested_at is None else set()
        )
        if status not in accept:
            return []
        return [
            Change(
                status=status,
                source=Source.POLL,
                at=vehicle.status_changed_at,
                learned_at=learned_at,
                detail="Found at High Mobility by a sync (the request's answer was lost).",
                description=reason if status == "rejected" else None,
            )
        ]
    entries = list(vehicle.changelog)
    statuses = [normalise(entry.status) for entry in entries]
    start = 0
    if clearance.status in statuses:
        # Never the steps that led to what we already have: approved by webhook, then a sync
        # must not record approved -> pending -> approved (hm_changed_at lags webhook news).
        start = len(statuses) - 1 - statuses[::-1].index(clearance.status)
    elif "pending" in statuses:
        start = len(statuses) - 1 - statuses[::-1].index("pending")
    changes = [
        Change(
            status=normalise(entry.status),
            source=Source.POLL,
            at=entry.timestamp,
            learned_at=learned_at,
            detail=entry.reason or "",
            description=entry.reason if entry.reason else None,
        )
        for entry in entries[start:]
        if clearance.hm_changed_at is None or entry.timestamp > clearance.hm_changed_at
    ]
    if not entries:
        changes.append(Change(status=status, source=Source.POLL, learned_at=learned_at))
    elif normalise(entries[-1].status) != status:
        # HM's current status has no changelog entry: take it, undated.
        changes.append(Change(status=status, source=Source.POLL, learned_at=learned_at))
    return changes


def force_change_if_needed(
    clearance: Clearance,
    vehicle: FleetVehicle,
    *,
    learned_at: datetime,
    known_before: datetime | None,
) -> Change | None:
    """After replaying, HM still says something else the graph never led to: take HM's word.

    Never for ``queued`` (a local state HM cannot know about) and never with stale news.
    """
    status = normalise(vehicle.status)
    if clearance.status in (QUEUED, status) or status == "":
        return None
    if known_before is not None and learned_at < known_before:
        return None
    if clearance.status_known_at is not None and learned_at < clearance.status_known_at:
        return None
    changed_at = vehicle.status_changed_at
    if (
        changed_at is not None
        and clearance.hm_changed_at is not None
        and changed_at < clearance.hm_changed_at
    ):
        return None
    logger.warning(
        "Clearance %s: HM reports %s, the state machine never led there from %s; taking HM's word",
        clearance.pk,
        status,
        clearance.status,
    )
    return Change(
        status=status,
        source=Source.POLL,
        at=None,
        learned_at=learned_at,
        detail=f"High Mobility reports {status}; changes in between were missed.",
        description=vehicle.reason,
        force=True,
    )
