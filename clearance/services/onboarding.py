"""Onboarding: vehicles are saved as ``queued`` clearances, then sent to HM in batches.

``queue_clearance_requests`` writes the rows and queues the send after commit;
``request_clearances`` (the task's work) claims queued rows with SKIP LOCKED and makes one
``POST /v1/fleets/vehicles`` per ``HM_CLEARANCE_BATCH_SIZE`` vehicles, applying each VIN's
answer through the state machine.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from clearance import state, tasks
from clearance.clients import hm_client_for
from clearance.hm import (
    AuthenticationError,
    ClearanceRequest,
    ClearanceResult,
    ForbiddenError,
    HMClient,
    PermanentError,
)
from clearance.locks import cache_lock
from clearance.models import Clearance, ClearanceEvent, ClearanceStatus, Credential
from clearance.services import common
from clearance.services.common import record_error, words
from clearance.services.vehicle_tokens import after_moves
from clearance.state import Change, Source
from vehicles.models import Vehicle

S = ClearanceStatus
NEW_REQUEST_DETAIL = "Clearance requested."


@dataclass
class QueueResult:
    queued: int = 0
    skipped: int = 0
    clearance_ids: list[int] = field(default_factory=list)
    skipped_reasons: Counter[str] = field(default_factory=Counter)


def queue_clearance_requests(
    vehicles: Iterable[Vehicle | int] | None = None,
    *,
    credential: Credential,
    actor: Any = None,
    clearance_ids: Iterable[int] | None = None,
) -> QueueResult:
    """Save clearances as ``queued`` (new ones, or re-onboarded finished ones) and send them
    after commit. Vehicles of another organization than the credential's are ignored.

    A clearance that is already queued, pending or approved is left alone (skipped).
    """
    ids = set(common.vehicle_ids(vehicles))
    if clearance_ids:
        ids |= set(
            Clearance.objects.filter(pk__in=list(clearance_ids)).values_list(
                "vehicle_id", flat=True
            )
        )
    result = QueueResult()
    if not ids:
        return result
    now = timezone.now()
    with transaction.atomic():
        vehicle_ids = list(
            Vehicle.objects.filter(pk__in=list(ids), organization_id=credential.organization_id)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        result.skipped_reasons["other organization"] = len(ids) - len(vehicle_ids)
        existing = {
            c.vehicle_id: c
            for c in Clearance.objects.select_for_update(of=("self",)).filter(
                vehicle_id__in=vehicle_ids
            )
        }
        new_rows = [
            Clearance(
                vehicle_id=vid,
                credential=credential,
                status=S.QUEUED,
                status_changed_at=now,
                status_known_at=now,
            )
            for vid in vehicle_ids
            if vid not in existing
        ]
        Clearance.objects.bulk_create(new_rows, batch_size=1000)
        events = [
            ClearanceEvent(
                clearance=row,
                from_status="",
                to_status=S.QUEUED,
                at=now,
                source=Source.USER if actor else Source.SYSTEM,
                actor=actor,
                detail=NEW_REQUEST_DETAIL,
            )
            for row in new_rows
        ]
        ClearanceEvent.objects.bulk_create(events, batch_size=1000)
        state.publish_changes(events)
        result.queued += len(new_rows)
        result.clearance_ids += [row.pk for row in new_rows]

        pairs = []
        for row in existing.values():
            if state.can_move(row.status, S.QUEUED):
                row.credential = credential
                pairs.append(
                    (
                        row,
                        Change(
                            status=S.QUEUED,
                            source=Source.USER if actor else Source.SYSTEM,
                            learned_at=now,
                            actor=actor,
                            detail="Clearance requested again.",
                        ),
                    )
                )
            else:
                result.skipped += 1
                result.skipped_reasons[f"already {row.status}"] += 1
        bulk = state.apply_changes(pairs, extra_fields=["credential"], now=now)
        result.queued += bulk.applied
        result.clearance_ids += [row.pk for row, _, _ in bulk.moves]
        result.skipped_reasons = +result.skipped_reasons
        if result.queued:
            tasks.request_clearances.delay_on_commit(credential.pk)
    return result


def queue_new_vehicles(vehicle_ids: list[int], *, credential: Credential, actor: Any = None) -> int:
    """``queue_clearance_requests`` for vehicles just created (a CSV import's batch), set-based:
    their ``queued`` clearances and first events are written by two ``INSERT ... SELECT``
    statements instead of model objects. The same rows, events and send as for new rows there;
    vehicles of another organization or with a clearance already are left alone. Returns how
    many were queued."""
    if not vehicle_ids:
        return 0
    now = timezone.now()
    source = Source.USER if actor else Source.SYSTEM
    clearances = connection.ops.quote_name(Clearance._meta.db_table)
    vehicles = connection.ops.quote_name(Vehicle._meta.db_table)
    events = connection.ops.quote_name(ClearanceEvent._meta.db_table)
    at = connection.ops.adapt_datetimefield_value(now)
    with transaction.atomic(), connection.cursor() as cursor:
        in_vehicles, ids = common.in_ids("v.id", vehicle_ids)
        cursor.execute(
            f"INSERT INTO {clearances} (vehicle_id, credential_id, status, status_changed_at, "  # noqa: S608
            "status_known_at, description, last_error) "
            f"SELECT v.id, %s, %s, %s, %s, '', '' FROM {vehicles} v "
            f"WHERE {in_vehicles} AND v.organization_id = %s "
            "ON CONFLICT (vehicle_id) DO NOTHING RETURNING id, vehicle_id",
            [credential.pk, S.QUEUED, at, at, *ids, credential.organization_id],
        )
        queued = cursor.fetchall()
        if not queued:
            return 0
        in_clearances, ids = common.in_ids("c.id", [pk for pk, _ in queued])
        cursor.execute(
            f"INSERT INTO {events} (clearance_id, from_status, to_status, at, source, actor_id, "  # noqa: S608
            f"detail) SELECT c.id, '', %s, %s, %s, %s, %s FROM {clearances} c WHERE {in_clearances}",
            [S.QUEUED, at, source, getattr(actor, "pk", None), NEW_REQUEST_DETAIL, *ids],
        )
        state.publish_new(
            [vehicle_id for _, vehicle_id in queued],
            to_status=S.QUEUED,
            at=now,
            source=source,
            detail=NEW_REQUEST_DETAIL,
        )
        tasks.request_clearances.delay_on_commit(credential.pk)
    return len(queued)


def reonboard(
    vehicles: Iterable[Vehicle | int],
    *,
    actor: Any = None,
    credential: Credential | None = None,
) -> QueueResult:
    """Request clearance again for rejected / revoked / canceled / failed vehicles, with the
    credential they used before (or ``credential``)."""
    ids = common.vehicle_ids(vehicles)
    total = QueueResult()
    by_credential: dict[int, list[int]] = {}
    for vehicle_id, credential_id in Clearance.objects.filter(vehicle_id__in=ids).values_list(
        "vehicle_id", "credential_id"
    ):
        key = credential.pk if credential else credential_id
        if key is not None:
            by_credential.setdefault(key, []).append(vehicle_id)
    for credential_id, vehicle_ids in by_credential.items():
        cred = credential or Credential.objects.get(pk=credential_id)
        part = queue_clearance_requests(vehicle_ids, credential=cred, actor=actor)
        total.queued += part.queued
        total.skipped += part.skipped
        total.clearance_ids += part.clearance_ids
        total.skipped_reasons.update(part.skipped_reasons)
    return total


@dataclass
class RequestSummary:
    sent: int = 0
    batches: int = 0
    hm_calls: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0
    more: bool = False  # stopped at the deadline; more queued rows remain
    error: str = ""  # a credential-level failure that stopped the run


def _request_for(vehicle: Vehicle) -> ClearanceRequest:
    tags = vehicle.tags if isinstance(vehicle.tags, dict) else {}
    return ClearanceRequest(
        vin=vehicle.vin.upper(),
        brand=vehicle.brand,
        tags={str(k): str(v) for k, v in tags.items()} or None,
        control_odometer_km=vehicle.odometer_km,
    )


@contextlib.contextmanager
def _claim_guard(credential: Credential) -> Iterator[None]:
    """Databases without SKIP LOCKED (SQLite): one sender per credential, by a cache lock."""
    if connection.features.has_select_for_update_skip_locked:
        yield
        return
    # Waiting longer than this raises LockTimeout (transient): the task retries later.
    with cache_lock(f"clearance-request:{credential.pk}", timeout=300, wait=60):
        yield


def _errorwords(description: str | None) -> str:
    if not description:
        return "High Mobility refused the request without saying why."
    return f"High Mobility refused the request: {description}."


def request_clearances(
    credential_id: int, *, client: HMClient | None = None, deadline: float | None = None
) -> RequestSummary:
    """Send this credential's ``queued`` clearances, claimed with SKIP LOCKED, in batches of
    ``HM_CLEARANCE_BATCH_SIZE`` (control measures where known), and apply each VIN's answer.

    A transient HM error rolls the current batch back (its rows stay queued) and propagates so
    the task retries; batches already answered stay done. ``deadline`` (time.monotonic()):
    stop there and report ``more``.
    """
    credential = Credential.objects.get(pk=credential_id)
    summary = RequestSummary()
    batch_size = settings.HM_CLEARANCE_BATCH_SIZE
    # Batches go in pk order; everything up to last_pk was tried in this run (an id range, not a
    # growing exclusion list, so the claim query stays cheap on a queue of 100,000 rows).
    last_pk = 0
    try:
        client = client or hm_client_for(credential)
    except ValueError as exc:  # CredentialIncomplete and friends
        record_error(Clearance.objects.filter(credential=credential, status=S.QUEUED), words(exc))
        summary.error = words(exc)
        return summary
    # PostgreSQL: the batch stays row-locked (SKIP LOCKED for other senders) during the HM call
    # and is answered in the same transaction. SQLite has no row locks and a reader blocks the
    # simulator's writes: there a cache lock makes one sender per credential, the batch is read
    # without a transaction and re-read when the answer is applied.
    row_locks = connection.features.has_select_for_update_skip_locked
    with _claim_guard(credential):
        while True:
            if deadline is not None and time.monotonic() > deadline:
                summary.more = Clearance.objects.filter(
                    credential=credential, status=S.QUEUED
                ).exists()
                break
            with transaction.atomic() if row_locks else contextlib.nullcontext():
                batch = list(
                    Clearance.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("vehicle")
                    .filter(credential=credential, status=S.QUEUED, pk__gt=last_pk)
                    .order_by("pk")[:batch_size]
                )
                if not batch:
                    break
                last_pk = batch[-1].pk
                learned_at = timezone.now()
                summary.hm_calls += 1
                try:
                    results = client.request_clearances([_request_for(r.vehicle) for r in batch])
                except (AuthenticationError, ForbiddenError) as exc:
                    # The application itself is refused: keep the rows queued, say why, stop.
                    record_error(batch, words(exc))
                    summary.error = words(exc)
                    break
                except PermanentError as exc:
                    with transaction.atomic(savepoint=False):
                        _fail_batch(_fresh(batch, row_locks), words(exc), learned_at)
                    summary.batches += 1
                    continue
                summary.batches += 1
                with transaction.atomic(savepoint=False):  # inside the batch's transaction
                    _apply_request_results(
                        credential, _fresh(batch, row_locks), results, learned_at, summary
                    )
    return summary


def _fresh(batch: list[Clearance], row_locks: bool) -> list[Clearance]:
    """The batch as stored now (without row locks it may have changed during the HM call)."""
    if row_locks:
        return batch
    return list(
        Clearance.objects.select_related("vehicle")
        .filter(pk__in=[row.pk for row in batch])
        .order_by("pk")
    )


def _apply_request_results(
    credential: Credential,
    batch: list[Clearance],
    results: list[ClearanceResult],
    learned_at: datetime,
    summary: RequestSummary,
) -> None:
    by_vin = {r.vin.upper(): r for r in results}
    pairs = []
    touched = []
    for row in batch:
        answer = by_vin.get(row.vehicle.vin.upper())
        if answer is None:
            row.last_error = "High Mobility did not answer for this vehicle; it will be sent again."
            row.last_error_at = learned_at
            touched.append(row)
            summary.unanswered += 1
            continue
        status = state.normalise(answer.status)
        summary.sent += 1
        summary.statuses[status] += 1
        row.requested_at = learned_at
        touched.append(row)
        if status == S.ERROR:
            row.last_error = _errorwords(answer.description)
            row.last_error_at = learned_at
        pairs.append(
            (
                row,
                Change(
                    status=status,
                    source=Source.API,
                    learned_at=learned_at,
                    description=answer.description or None,
                    detail=answer.description or "",
                ),
            )
        )
    bulk = state.apply_changes(pairs, touched=touched)
    after_moves(credential, bulk.moves)


def _fail_batch(batch: list[Clearance], words: str, learned_at: datetime) -> None:
    pairs = []
    for row in batch:
        row.last_error = words
        row.last_error_at = learned_at
        pairs.append((row, Change(status=S.ERROR, source=Source.API, learned_at=learned_at)))
    state.apply_changes(pairs, touched=batch)
