"""Onboarding: vehicles are saved as ``queued`` clearances, then sent to HM in batches.

``queue_clearance_requests`` writes the rows and, in the same transaction, one send per
clearance as durable work (``HMWork``, see ``durable/__init__.py``), then wakes a sender after
commit; ``clearance.services.sending`` sends them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from clearance import state, tasks
from clearance.models import Clearance, ClearanceEvent, ClearanceStatus, Credential, HMWork
from clearance.services import common
from clearance.state import Change, Source
from durable.models import WorkState
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
            # The sends are durable work, written with the clearances; the task only wakes.
            HMWork.objects.bulk_create(
                [
                    HMWork(
                        clearance_id=pk,
                        credential=credential,
                        kind=HMWork.Kind.SEND,
                        actor=actor if getattr(actor, "pk", None) else None,
                    )
                    for pk in result.clearance_ids
                ],
                batch_size=1000,
                ignore_conflicts=True,
            )
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
    work_table = connection.ops.quote_name(HMWork._meta.db_table)
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
        # The sends are durable work, written with the clearances (as queue_clearance_requests).
        cursor.execute(
            f"INSERT INTO {work_table} (clearance_id, credential_id, kind, actor_id, state, "  # noqa: S608
            "attempts, next_attempt_at, last_error, claim, created_at, updated_at) "
            f"SELECT c.id, %s, %s, %s, %s, 0, %s, '', '', %s, %s FROM {clearances} c "
            f"WHERE {in_clearances}",
            [
                credential.pk,
                HMWork.Kind.SEND,
                getattr(actor, "pk", None),
                WorkState.PENDING,
                at,
                at,
                at,
                *ids,
            ],
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
