"""Writing an import, set-based.

The file is validated once, while the preview is made: ``Stager`` puts each valid row into the
staging table ``ImportRow`` (``COPY`` on PostgreSQL, a multi-row ``INSERT`` on SQLite).
``write_batch`` then writes one range of staged rows with a few statements, whatever its size:
the new vehicles by ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` (a VIN added meanwhile is
simply skipped), their queued clearances and first events by the clearance app's set-based
``queue_new_vehicles``, updates of existing vehicles (``update_existing``) by the same
``changes_for`` rule as the preview. The caller commits a batch together with the job's progress,
so a batch is written exactly once however often its task runs. ``analyze`` refreshes the
planner's statistics once an import ended (the clearance sender's claim query needs them).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from clearance.models import Clearance, ClearanceEvent, Credential, HMWork
from clearance.services.onboarding import queue_new_vehicles
from imports.models import ImportJob, ImportRow
from imports.planning import _CURRENT_FIELDS, Counts, PlannedBatch
from imports.rows import VehicleRow
from vehicles import events as fleet_events
from vehicles.models import Vehicle

_VEHICLE_COLUMNS = ("vin", "brand", "license_plate", "nickname", "tags", "odometer_km")
STAGED_COLUMNS = ("job_id", "seq", "row", "public_id", *_VEHICLE_COLUMNS)


def _table(model: Any) -> str:
    return str(connection.ops.quote_name(model._meta.db_table))


class Stager:
    """Stages the valid rows of a job's planned batches, in file order (see ``ImportRow``)."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.seq = 0
        self.staged = 0

    def reset(self) -> None:
        ImportRow.objects.filter(job_id=self.job_id).delete()

    def add(self, batch: PlannedBatch) -> None:
        postgres = connection.vendor == "postgresql"
        rows = []
        for row in batch.all_rows:
            self.seq += 1
            if not row.ok:
                continue
            rows.append(
                (
                    self.job_id,
                    self.seq,
                    row.row,
                    *(() if postgres else (uuid.uuid4().hex,)),
                    row.vin,
                    row.brand,
                    row.license_plate,
                    row.nickname,
                    json.dumps(row.tags),
                    row.odometer_km,
                )
            )
        if not rows:
            return
        self.staged += len(rows)
        staged = [c for c in STAGED_COLUMNS if c != "public_id" or not postgres]
        columns = ", ".join(staged)
        with transaction.atomic(), connection.cursor() as cursor:  # one commit per batch
            if postgres:
                with cursor.copy(f"COPY {_table(ImportRow)} ({columns}) FROM STDIN") as copy:
                    for values in rows:
                        copy.write_row(values)
            else:
                marks = ", ".join(["%s"] * len(staged))
                cursor.executemany(
                    f"INSERT INTO {_table(ImportRow)} ({columns}) VALUES ({marks})",  # noqa: S608
                    rows,
                )


def write_batch(
    job: ImportJob,
    *,
    after: int,
    upto: int,
    credential: Credential | None,
    actor: Any = None,
) -> Counts:
    """Write the job's staged rows ``after < seq <= upto``; call inside a transaction.

    Updates come first, so the vehicles they see are the ones that were there before this batch.
    Returns what the batch did (created, updated, skipped, queued_requests).
    """
    now = timezone.now()
    staged = ImportRow.objects.filter(job_id=job.pk, seq__gt=after, seq__lte=upto)
    counts = Counts()
    if job.update_existing:
        counts.updated = _update_existing(job, staged, now)
    at = connection.ops.adapt_datetimefield_value(now)
    columns = ", ".join(_VEHICLE_COLUMNS)
    # PostgreSQL draws the public ids here (the check stages none; a job checked by an older
    # version brought its own).
    public_id = "s.public_id"
    if connection.vendor == "postgresql":
        public_id = "coalesce(s.public_id, gen_random_uuid())"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_table(Vehicle)} (public_id, organization_id, {columns}, "  # noqa: S608
            f"created_at, updated_at) SELECT {public_id}, %s, "
            f"{', '.join(f's.{name}' for name in _VEHICLE_COLUMNS)}, %s, %s "
            f"FROM {_table(ImportRow)} s WHERE s.job_id = %s AND s.seq > %s AND s.seq <= %s "
            "ORDER BY s.seq ON CONFLICT (organization_id, vin) DO NOTHING RETURNING id",
            [job.organization_id, at, at, job.pk, after, upto],
        )
        created = [vehicle_id for (vehicle_id,) in cursor.fetchall()]
    if created:  # told to the change feed of the API
        fleet_events.publish([fleet_events.VehiclesAdded(tuple(created), now)])
    counts.created = len(created)
    counts.skipped = staged.count() - counts.created - counts.updated
    if credential is not None and created:
        # Without an HM application the vehicles wait as "not requested".
        counts.queued_requests = queue_new_vehicles(created, credential=credential, actor=actor)
    return counts


def _update_existing(job: ImportJob, staged: Any, now: Any) -> int:
    """Apply the staged rows' changes to vehicles already in the fleet (empty cells never clear a
    value; the rule is ``VehicleRow.changes_for``, as in the preview). Returns how many changed."""
    current = {
        vehicle["vin"]: vehicle
        for vehicle in Vehicle.objects.filter(
            organization_id=job.organization_id, vin__in=staged.values("vin")
        ).values(*_CURRENT_FIELDS)
    }
    if not current:
        return 0
    changed = []
    for values in staged.filter(vin__in=list(current)).values("row", *_VEHICLE_COLUMNS):
        row = VehicleRow(**values)
        vehicle = current[row.vin]
        changes = row.changes_for(vehicle)
        if changes:
            changed.append((vehicle, changes))
    fields = sorted({name for _, changes in changed for name in changes})
    objects = []
    for vehicle, changes in changed:
        update = Vehicle(pk=vehicle["id"], updated_at=now)
        for name in fields:
            setattr(update, name, changes.get(name, vehicle[name]))
        objects.append(update)
    if objects:
        Vehicle.objects.bulk_update(objects, [*fields, "updated_at"])
    return len(objects)


def analyze() -> None:
    """Fresh planner statistics for the tables an import filled (the HM sends included: the
    sender claims them): right after a 100,000-row import, the clearance sender's claim query
    was 10 times slower with the old ones."""
    tables = ", ".join(_table(model) for model in (Vehicle, Clearance, ClearanceEvent, HMWork))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {tables}")
        else:
            cursor.execute("PRAGMA optimize")
