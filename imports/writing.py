"""Writing an import: the planned batches become vehicles (and, with an HM application, queued
clearances with their first event), one transaction per batch, so a redelivered import task
resumes after the last committed batch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, BinaryIO

from django.db import IntegrityError, transaction
from django.utils import timezone

from clearance.models import Credential
from clearance.services.onboarding import queue_clearance_requests
from imports import planning
from imports.planning import Counts, PlannedBatch, open_plan
from organizations.models import Organization
from vehicles import events as fleet_events
from vehicles.models import Vehicle

logger = logging.getLogger(__name__)


def import_rows(
    stream: BinaryIO,
    organization: Organization,
    *,
    credential: Credential | None,
    user: Any = None,
    update_existing: bool,
    resume_after: int = 0,
    on_batch: Callable[[Counts, int], None] | None = None,
) -> Counts:
    """Import the valid rows of the file in batches; rows with errors are skipped.

    ``resume_after`` skips the first N data rows (already imported by an earlier attempt; they
    are still validated so duplicates are detected the same way). ``on_batch(counts, processed)``
    runs inside each batch's transaction (raise to roll the batch back).
    """
    _, batches = open_plan(stream, organization, update_existing=update_existing)
    counts = Counts()
    processed = 0
    for batch in batches:
        if processed + batch.rows <= resume_after:
            processed += batch.rows
            continue
        try:
            _commit_batch(batch, counts, processed, organization, credential, user, on_batch)
        except IntegrityError:
            # A VIN of this batch was added meanwhile (by hand, or by another import): classify
            # the batch again, so that vehicle counts as already in the fleet, and write it once.
            batch = planning._classify(batch.all_rows, organization, update_existing)
            _commit_batch(batch, counts, processed, organization, credential, user, on_batch)
        processed += batch.rows
    return counts


def _commit_batch(batch, counts, processed, organization, credential, user, on_batch) -> None:
    """Write one batch and its progress in one transaction; counts change only if it commits."""
    with transaction.atomic():
        queued = _write_batch(batch, organization, credential, user)
        batch_counts = Counts()
        batch_counts.add_plan(batch)
        batch_counts.queued_requests = queued
        if on_batch:
            on_batch(_sum(counts, batch_counts), processed + batch.rows)
    _add(counts, batch_counts)


def _sum(counts: Counts, more: Counts) -> Counts:
    total = Counts(**counts.as_fields())
    _add(total, more)
    return total


def _add(counts: Counts, more: Counts) -> None:
    for name, value in more.as_fields().items():
        setattr(counts, name, getattr(counts, name) + value)


def _write_batch(
    batch: PlannedBatch,
    organization: Organization,
    credential: Credential | None,
    user: Any,
) -> int:
    """Create the batch's new vehicles, queue their clearances, apply updates; returns queued."""
    now = timezone.now()
    vehicles = [
        Vehicle(
            organization=organization,
            vin=row.vin,
            brand=row.brand,
            license_plate=row.license_plate,
            nickname=row.nickname,
            tags=row.tags,
            odometer_km=row.odometer_km,
        )
        for row in batch.new
    ]
    Vehicle.objects.bulk_create(vehicles)
    if vehicles:  # told to the change feed of the API
        fleet_events.publish([fleet_events.VehiclesAdded(tuple(v.pk for v in vehicles), now)])
    if batch.updates:
        _update_existing(batch, now)
    if credential is None or not vehicles:
        return 0  # without an HM application the vehicles wait as "not requested"
    # Bulk-creates the clearances (queued) and their first event in this transaction, and
    # sends them to HM in batches after commit (clearance lifecycle, issue 4).
    result = queue_clearance_requests(
        [vehicle.pk for vehicle in vehicles],
        credential=credential,
        actor=user if getattr(user, "pk", None) else None,
    )
    return result.queued


def _update_existing(batch: PlannedBatch, now: Any) -> None:
    fields = sorted({name for _, _, changes in batch.updates for name in changes})
    objects = []
    for current, _row, changes in batch.updates:
        vehicle = Vehicle(pk=current["id"], updated_at=now)
        for name in fields:
            setattr(vehicle, name, changes.get(name, current[name]))
        objects.append(vehicle)
    Vehicle.objects.bulk_update(objects, [*fields, "updated_at"])
