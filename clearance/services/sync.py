"""Sync: one ``GET /v1/fleets/vehicles`` per credential, and only the rows HM moved written.

A lost task message is the reconciler's business (durable/__init__.py), not the sync's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from clearance import changelog, state
from clearance.clients import hm_client_for
from clearance.hm import FleetVehicle, HMClient
from clearance.models import Clearance, ClearanceStatus, Credential
from clearance.services.token_work import after_moves
from clearance.state import Change, Source

S = ClearanceStatus


@dataclass
class SyncSummary:
    credential: str = ""
    hm_calls: int = 0
    listed: int = 0
    compared: int = 0
    written: int = 0
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)  # (from, to) -> n
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (vin, from, to)
    unknown_at_hm: int = 0  # ours, sent, but HM does not list them
    not_ours: int = 0  # HM lists them, we do not know them
    error: str = ""

    @property
    def changed(self) -> int:
        return sum(self.moves.values())


SYNC_ONLY = (
    "id",
    "status",
    "status_changed_at",
    "hm_changed_at",
    "status_known_at",
    "requested_at",
    "description",
    "credential_id",
    "vehicle__vin",
)


def might_change(row: Clearance, vehicle: FleetVehicle) -> bool:
    status = state.normalise(vehicle.status)
    if row.status != status:
        return True
    # Same status: only news HM dated after what we know is worth a look. A status we learnt
    # undated (a POST answer, a webhook) is not rewritten just to note HM's time of it, so the
    # first sync after an onboarding writes only the rows that really moved.
    changed_at = vehicle.status_changed_at
    if changed_at is not None and row.hm_changed_at is not None and changed_at > row.hm_changed_at:
        return True
    reason = vehicle.reason
    return bool(reason) and reason != row.description


def sync_clearances(credential: Credential, *, client: HMClient | None = None) -> SyncSummary:
    """ONE list call; only the rows whose status moved are written (bulk), with their events.
    Queued rows are not sent from here: their sends are durable work the reconciler wakes.
    """
    summary = SyncSummary(credential=credential.name)
    client = client or hm_client_for(credential)
    learned_at = timezone.now()
    summary.hm_calls += 1
    listed = client.list_clearances()
    summary.listed = len(listed)
    by_vin = {v.vin.upper(): v for v in listed}

    rows = (
        Clearance.objects.filter(credential=credential)
        .select_related("vehicle")
        .only(*SYNC_ONLY)
        .order_by()
    )
    candidates: list[int] = []
    seen_vins: set[str] = set()
    for row in rows.iterator(chunk_size=2000):
        vin = row.vehicle.vin.upper()
        seen_vins.add(vin)
        summary.compared += 1
        vehicle = by_vin.get(vin)
        if vehicle is None:
            if row.status not in (S.QUEUED, S.ERROR):
                summary.unknown_at_hm += 1
            continue
        if might_change(row, vehicle):
            candidates.append(row.pk)
    summary.not_ours = len(set(by_vin) - seen_vins)

    apply_listed(credential, candidates, by_vin, learned_at, summary)
    remember_sync(credential.pk, at=learned_at, changed=summary.changed, listed=summary.listed)
    return summary


def apply_listed(
    credential: Credential,
    candidates: list[int],
    by_vin: dict[str, FleetVehicle],
    learned_at: datetime,
    summary: SyncSummary,
    *,
    hints: dict[str, tuple[str, str]] | None = None,
) -> None:
    """Write what HM's list says of the ``candidates`` (clearance ids): the changes of its
    changelog through the state machine, HM's word where the graph has no way there.

    ``hints``: VIN -> (status, words) a webhook announced; the confirmed changes are recorded
    as the webhook's news, with its words where HM moved to the status it announced."""
    if not candidates:
        return
    with transaction.atomic():
        locked = list(
            Clearance.objects.select_for_update(of=("self",))
            .select_related("vehicle")
            .filter(pk__in=candidates)
            .order_by("pk")
        )
        pairs = []
        forced_rows = []
        for row in locked:
            vin = row.vehicle.vin.upper()
            vehicle = by_vin[vin]
            for change in changelog.changes_from_hm(row, vehicle, learned_at=learned_at):
                pairs.append((row, _hinted(change, hints, vin)))
            forced_rows.append((row, vehicle, row.status_known_at))
        bulk = state.apply_changes(pairs, now=learned_at)
        # Rows HM moved where the graph never leads: take HM's word (rare; logged).
        forced = []
        for row, vehicle, known_before in forced_rows:
            forced_change = changelog.force_change_if_needed(
                row, vehicle, learned_at=learned_at, known_before=known_before
            )
            if forced_change is not None:
                forced.append((row, _hinted(forced_change, hints, row.vehicle.vin.upper())))
        forced_bulk = state.apply_changes(forced, now=learned_at) if forced else None
        moves = bulk.moves + (forced_bulk.moves if forced_bulk else [])
        summary.written += len(
            {r.pk for r in bulk.changed}
            | ({r.pk for r in forced_bulk.changed} if forced_bulk else set())
        )
        for row, before, after in moves:
            summary.moves[(before, after)] += 1
            if len(summary.changes) < 1000:
                summary.changes.append((row.vehicle.vin, before, after))
        after_moves(credential, moves)


def _hinted(change: Change, hints: dict[str, tuple[str, str]] | None, vin: str) -> Change:
    """A change confirmed after a webhook: recorded as the webhook's news, in its words."""
    if hints is None:
        return change
    announced, words = hints.get(vin, ("", ""))
    detail = words if announced == change.status else ""
    return replace(
        change,
        source=Source.WEBHOOK,
        detail=detail or change.detail or "Confirmed with High Mobility after its webhook.",
        description=change.description if change.description is not None else (detail or None),
    )


def remember_sync(credential_id: int, *, at: datetime, **facts: Any) -> None:
    """The outcome of the credential's last sync (counts, or an error in words)."""
    cache.set(f"clearance:last-sync:{credential_id}", {"at": at.isoformat(), **facts}, timeout=None)
