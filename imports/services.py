"""CSV import services: upload -> validate (preview) -> confirm -> import in batches.

The same streaming pipeline serves the preview, the Celery import, the error report and the
``vehicles_import`` command: ``plan_batches`` reads the file once, validates every row and sorts
each batch into new / update / unchanged / invalid with one query per batch; ``import_rows``
writes the batches (vehicles, clearances in ``queued`` and their first event) and hands the new
clearances to the clearance lifecycle in batches. Nothing grows with the file except the
duplicate index (about 12 bytes per VIN).

Idempotent: VINs already in the fleet are skipped (or updated with ``update_existing``), so
importing the same file twice changes nothing the second time, and a redelivered import task
resumes after the last committed batch (``ImportJob.processed``).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, BinaryIO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max
from django.utils import timezone

from imports.models import ImportChunk, ImportJob
from imports.parse import WINDOWS_1252, CsvFileError, CsvLayout, FleetCsv, open_fleet_csv
from imports.rows import RowIssue, RowValidator, VehicleRow
from vehicles.models import Vehicle

if TYPE_CHECKING:
    from django.core.files.uploadedfile import UploadedFile

    from clearance.models import Credential
    from organizations.models import Organization

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
ERROR_SAMPLE_SIZE = 50
_CURRENT_FIELDS = ("id", "vin", "brand", "license_plate", "nickname", "tags", "odometer_km")


class ImportRejected(Exception):
    """The request cannot be done; ``str(exc)`` is the message for the user."""


class PreviewStale(ImportRejected):
    """The fleet changed since the preview: its counts are out of date; check the file again."""


# -- planning (read-only) ----------------------------------------------------------------------
@dataclass(slots=True)
class PlannedBatch:
    rows: int = 0
    all_rows: list[VehicleRow] = field(default_factory=list)
    new: list[VehicleRow] = field(default_factory=list)
    updates: list[tuple[dict[str, Any], VehicleRow, dict[str, Any]]] = field(default_factory=list)
    unchanged: list[VehicleRow] = field(default_factory=list)
    invalid: list[VehicleRow] = field(default_factory=list)
    warnings: list[RowIssue] = field(default_factory=list)


@dataclass(slots=True)
class Counts:
    total: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: int = 0
    warnings: int = 0
    queued_requests: int = 0

    def add_plan(self, batch: PlannedBatch) -> None:
        self.total += batch.rows
        self.created += len(batch.new)
        self.updated += len(batch.updates)
        self.skipped += len(batch.unchanged)
        self.errors += len(batch.invalid)
        self.warnings += len(batch.warnings)

    def as_fields(self) -> dict[str, int]:
        return {
            "total": self.total,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "errors": self.errors,
            "warnings": self.warnings,
            "queued_requests": self.queued_requests,
        }


def open_plan(
    stream: BinaryIO,
    organization: Organization,
    *,
    update_existing: bool,
    batch_size: int | None = None,
) -> tuple[CsvLayout, Iterator[PlannedBatch]]:
    """Open the file (raises ``CsvFileError``) and return its layout and a lazy batch iterator."""
    csv_file, batches = _open_plan(
        stream, organization, update_existing=update_existing, batch_size=batch_size
    )
    return csv_file.layout, batches


def _open_plan(
    stream: BinaryIO,
    organization: Organization,
    *,
    update_existing: bool,
    batch_size: int | None = None,
) -> tuple[FleetCsv, Iterator[PlannedBatch]]:
    csv_file = open_fleet_csv(stream)
    validator = RowValidator(csv_file.layout)
    size = batch_size or settings.IMPORT_BATCH_SIZE

    def batches() -> Iterator[PlannedBatch]:
        pending: list[VehicleRow] = []
        for raw in csv_file.rows():
            pending.append(validator.validate(raw))
            if len(pending) >= size:
                yield _classify(pending, organization, update_existing)
                pending = []
        if pending:
            yield _classify(pending, organization, update_existing)

    return csv_file, batches()


def _classify(
    rows: list[VehicleRow], organization: Organization, update_existing: bool
) -> PlannedBatch:
    batch = PlannedBatch(rows=len(rows), all_rows=rows)
    valid = [row for row in rows if row.ok]
    existing = {
        current["vin"]: current
        for current in Vehicle.objects.filter(
            organization=organization, vin__in=[row.vin for row in valid]
        ).values(*_CURRENT_FIELDS)
    }
    for row in rows:
        batch.warnings.extend(row.warnings)
        if not row.ok:
            batch.invalid.append(row)
            continue
        current = existing.get(row.vin)
        if current is None:
            batch.new.append(row)
            continue
        if current["brand"] != row.brand:
            issue = RowIssue(
                row.row,
                "brand",
                f"{row.vin} is already in the fleet as {current['brand']}; its brand is not changed.",
            )
            if issue not in row.warnings:  # classified again after a conflict
                row.warnings.append(issue)
            batch.warnings.append(issue)
        changes = row.changes_for(current) if update_existing else {}
        if changes:
            batch.updates.append((current, row, changes))
        else:
            batch.unchanged.append(row)
    return batch


def plan_file(
    stream: BinaryIO,
    organization: Organization,
    *,
    update_existing: bool,
    on_batch: Callable[[Counts], None] | None = None,
) -> tuple[CsvLayout, Counts, list[dict[str, Any]]]:
    """Validate the whole file without writing: layout, counts and the first errors."""
    plan = plan_issues(stream, organization, update_existing=update_existing, on_batch=on_batch)
    return plan.layout, plan.counts, plan.errors


@dataclass(slots=True)
class Plan:
    layout: CsvLayout  # final: the encoding may be known only at the end of the file
    counts: Counts
    errors: list[dict[str, Any]]  # the first ERROR_SAMPLE_SIZE errors
    warnings: list[dict[str, Any]]  # the first ERROR_SAMPLE_SIZE warnings

    @property
    def sample(self) -> list[dict[str, Any]]:
        """What ImportJob.error_sample keeps: the first errors, then the first warnings."""
        return [
            *({**issue, "level": "error"} for issue in self.errors),
            *({**issue, "level": "warning"} for issue in self.warnings),
        ]


def plan_issues(
    stream: BinaryIO,
    organization: Organization,
    *,
    update_existing: bool,
    on_batch: Callable[[Counts], None] | None = None,
) -> Plan:
    """Validate the whole file without writing: layout, counts, first errors and warnings."""
    csv_file, batches = _open_plan(stream, organization, update_existing=update_existing)
    counts = Counts()
    errors: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    for batch in batches:
        counts.add_plan(batch)
        for row in batch.invalid:
            for issue in row.errors:
                if len(errors) < ERROR_SAMPLE_SIZE:
                    errors.append(issue.as_dict())
        for issue in batch.warnings[: max(0, ERROR_SAMPLE_SIZE - len(warnings))]:
            warnings.append(issue.as_dict())
        if on_batch:
            on_batch(counts)
    return Plan(csv_file.layout, counts, errors, warnings)


def layout_summary(layout: CsvLayout) -> dict[str, Any]:
    return {
        "encoding": layout.encoding_label,
        "windows_1252": layout.encoding_label == WINDOWS_1252,
        "delimiter": layout.delimiter_name,
        "columns": {name: layout.label(name) for name in layout.columns},
        "unknown_columns": list(layout.unknown_columns),
        "header_row": layout.header_row,
    }


def sample_issues(job: ImportJob, level: str) -> list[dict[str, Any]]:
    """The job's first errors (``level="error"``) or warnings, as the preview shows them."""
    return [issue for issue in job.error_sample if issue.get("level", "error") == level]


# -- a preview that is out of date -------------------------------------------------------------
def fleet_state(organization: Organization) -> str:
    """A fingerprint of the fleet that changes when a vehicle is added, removed or edited.

    Kept with the preview: if it differs at confirmation, the preview's counts (new, to update,
    skipped) no longer describe what the import would do.
    """
    state = Vehicle.objects.filter(organization=organization).aggregate(
        count=Count("id"), created=Max("created_at"), updated=Max("updated_at")
    )
    stamps = [value.isoformat() if value else "-" for value in (state["created"], state["updated"])]
    return ":".join([str(state["count"]), *stamps])


def preview_is_stale(job: ImportJob) -> bool:
    """True when the fleet changed since this preview was made (its counts may be wrong)."""
    recorded = (job.layout or {}).get("fleet_state")
    if job.status != ImportJob.Status.PREVIEW or not recorded:
        return False
    return recorded != fleet_state(job.organization)


STALE_PREVIEW = (
    "The fleet changed since this file was checked (vehicles were added, edited or removed, "
    "for example by another import), so the numbers in this preview may be wrong. Nothing was "
    "imported. Check the file again to see what it would do now."
)


# -- writing -----------------------------------------------------------------------------------
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
            batch = _classify(batch.all_rows, organization, update_existing)
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
    if batch.updates:
        _update_existing(batch, now)
    if credential is None or not vehicles:
        return 0  # without an HM application the vehicles wait as "not requested"
    from clearance.services import queue_clearance_requests

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


# -- upload and the job life cycle ----------------------------------------------------------------
def import_job_create(
    *,
    organization: Organization,
    user: Any,
    upload: UploadedFile,
    update_existing: bool = False,
    check_eligibility: bool = False,
    credential: Credential | None = None,
) -> ImportJob:
    """Store the upload in the database and queue its validation."""
    limit = settings.IMPORT_MAX_UPLOAD_MB * 1024 * 1024
    if upload.size is not None and upload.size > limit:
        raise ImportRejected(
            f"The file is {upload.size / 1024 / 1024:.1f} MB; the limit is "
            f"{settings.IMPORT_MAX_UPLOAD_MB} MB. Split it into smaller files."
        )
    from imports.tasks import validate_import_job as validate_import_job_task

    with transaction.atomic():
        job = ImportJob.objects.create(
            organization=organization,
            created_by=user,
            original_name=(upload.name or "")[:255],
            update_existing=update_existing,
            check_eligibility=check_eligibility,
            credential_public_id=credential.public_id if credential else None,
        )
        digest = hashlib.sha256()
        size = 0
        for index, data in enumerate(_chunks(upload)):
            digest.update(data)
            size += len(data)
            if size > limit:
                raise ImportRejected(f"The file is larger than {settings.IMPORT_MAX_UPLOAD_MB} MB.")
            ImportChunk.objects.create(job=job, index=index, data=data)
        job.size, job.sha256 = size, digest.hexdigest()
        job.save(update_fields=["size", "sha256"])
        validate_import_job_task.delay_on_commit(job.pk)
    prune_old_files()
    return job


def prune_old_files() -> int:
    """Delete stored files of imports that ended more than IMPORT_FILE_RETENTION_DAYS ago."""
    cutoff = timezone.now() - timedelta(days=settings.IMPORT_FILE_RETENTION_DAYS)
    deleted, _ = ImportChunk.objects.filter(
        job__finished_at__lt=cutoff,
        job__status__in=[ImportJob.Status.DONE, ImportJob.Status.FAILED, ImportJob.Status.CANCELED],
    ).delete()
    return deleted


def job_file_kept(job: ImportJob) -> bool:
    return job.chunks.exists()


def _chunks(upload: UploadedFile) -> Iterator[bytes]:
    buffer = b""
    for piece in upload.chunks(CHUNK_BYTES):
        buffer += piece
        while len(buffer) >= CHUNK_BYTES:
            yield buffer[:CHUNK_BYTES]
            buffer = buffer[CHUNK_BYTES:]
    if buffer:
        yield buffer


class JobFile(io.RawIOBase):
    """The job's file read back chunk by chunk (one query per MB), never whole."""

    def __init__(self, job: ImportJob) -> None:
        self._job_id = job.pk
        self._index = 0
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._buffer:
            row = ImportChunk.objects.filter(job_id=self._job_id, index=self._index).values_list(
                "data", flat=True
            )
            data = next(iter(row), None)
            if data is None:
                return 0
            self._index += 1
            self._buffer = memoryview(bytes(data))
        size = min(len(buffer), len(self._buffer))
        buffer[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def open_job_file(job: ImportJob) -> BinaryIO:
    return io.BufferedReader(JobFile(job), buffer_size=256 * 1024)  # type: ignore[return-value]


def job_credential(job: ImportJob) -> Credential | None:
    if not job.credential_public_id:
        return None
    from clearance.models import Credential

    return Credential.objects.filter(
        organization_id=job.organization_id, public_id=job.credential_public_id
    ).first()


def import_job_validate(job_id: int) -> None:
    """Task body: read the whole file, fill the preview counts, then status ``preview``."""
    claimed = ImportJob.objects.filter(
        pk=job_id, status__in=[ImportJob.Status.UPLOADED, ImportJob.Status.VALIDATING]
    ).update(status=ImportJob.Status.VALIDATING)
    if not claimed:
        return
    job = ImportJob.objects.select_related("organization").get(pk=job_id)

    def progress(counts: Counts) -> None:
        ImportJob.objects.filter(pk=job_id).update(total=counts.total)

    # Taken before reading: a change made while the file is read also makes the preview stale.
    state = fleet_state(job.organization)
    try:
        with open_job_file(job) as stream:
            plan = plan_issues(
                stream, job.organization, update_existing=job.update_existing, on_batch=progress
            )
    except CsvFileError as exc:
        _finish(job, ImportJob.Status.FAILED, message=exc.message)
        return
    fields = plan.counts.as_fields()
    fields.pop("queued_requests")
    eligibility = check_new_vins_eligibility(job) if job.check_eligibility else {}
    ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.VALIDATING).update(
        **fields,
        layout={**layout_summary(plan.layout), "fleet_state": state},
        error_sample=plan.sample,
        eligibility=eligibility,
        status=ImportJob.Status.PREVIEW,
        validated_at=timezone.now(),
    )


def import_job_confirm(job: ImportJob, *, user: Any, accept_skipped: bool) -> None:
    """Start the import; with row errors, only once the user accepted that they are skipped."""
    if job.status != ImportJob.Status.PREVIEW:
        raise ImportRejected("This import is not waiting for confirmation any more.")
    if job.errors and not accept_skipped:
        raise ImportRejected(
            f"{job.errors} row{'s' if job.errors != 1 else ''} with errors will be skipped. "
            "Tick the box to confirm, or fix the file and upload it again."
        )
    if not (job.created or job.updated):
        raise ImportRejected("There is nothing to import: no new or changed vehicles in this file.")
    if preview_is_stale(job):
        raise PreviewStale(STALE_PREVIEW)
    from imports.tasks import run_import_job as run_import_job_task

    with transaction.atomic():
        started = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.PREVIEW).update(
            status=ImportJob.Status.IMPORTING,
            confirmed_at=timezone.now(),
            confirmed_by=user,
            processed=0,
            created=0,
            updated=0,
            skipped=0,
            errors=0,
            warnings=0,
        )
        if not started:
            raise ImportRejected("This import was already started.")
        run_import_job_task.delay_on_commit(job.pk)


def import_job_recheck(job: ImportJob) -> None:
    """Validate a previewed job's file again (against the fleet as it is now); new preview."""
    from imports.tasks import validate_import_job as validate_import_job_task

    if not job_file_kept(job):
        raise ImportRejected("The file of this import is no longer kept; upload it again.")
    with transaction.atomic():
        restarted = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.PREVIEW).update(
            status=ImportJob.Status.UPLOADED,
            validated_at=None,
            total=0,
            created=0,
            updated=0,
            skipped=0,
            errors=0,
            warnings=0,
            error_sample=[],
            eligibility={},
        )
        if not restarted:
            raise ImportRejected("This import is not waiting for confirmation any more.")
        validate_import_job_task.delay_on_commit(job.pk)


def import_job_cancel(job: ImportJob) -> None:
    canceled = ImportJob.objects.filter(
        pk=job.pk, status__in=[ImportJob.Status.PREVIEW, ImportJob.Status.UPLOADED]
    ).update(status=ImportJob.Status.CANCELED, finished_at=timezone.now())
    if not canceled:
        raise ImportRejected("Only an import that has not started can be canceled.")
    ImportChunk.objects.filter(job=job).delete()


class ImportInterrupted(Exception):
    """Another worker is running the same job (or it was canceled): stop quietly."""


def import_job_run(job_id: int) -> None:
    """Task body: import the confirmed job, committing counts with every batch (resumable)."""
    job = (
        ImportJob.objects.select_related("organization", "confirmed_by")
        .filter(pk=job_id, status=ImportJob.Status.IMPORTING)
        .first()
    )
    if job is None:
        return
    expected = {"processed": job.processed}

    def save_progress(counts: Counts, processed: int) -> None:
        locked = ImportJob.objects.select_for_update().get(pk=job_id)
        if locked.status != ImportJob.Status.IMPORTING or locked.processed != expected["processed"]:
            raise ImportInterrupted
        ImportJob.objects.filter(pk=job_id).update(processed=processed, **_resumed(job, counts))
        expected["processed"] = processed

    try:
        with open_job_file(job) as stream:
            import_rows(
                stream,
                job.organization,
                credential=job_credential(job),
                user=job.confirmed_by,
                update_existing=job.update_existing,
                resume_after=job.processed,
                on_batch=save_progress,
            )
    except ImportInterrupted:
        return
    except CsvFileError as exc:  # the file was fine at preview; only a broken store gets here
        _finish(job, ImportJob.Status.FAILED, message=exc.message)
        return
    ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.IMPORTING).update(
        status=ImportJob.Status.DONE, finished_at=timezone.now()
    )


def _resumed(job: ImportJob, counts: Counts) -> dict[str, int]:
    """Counts of this attempt added to what earlier attempts committed."""
    return {
        "created": job.created + counts.created,
        "updated": job.updated + counts.updated,
        "skipped": job.skipped + counts.skipped,
        "errors": job.errors + counts.errors,
        "warnings": job.warnings + counts.warnings,
        "queued_requests": job.queued_requests + counts.queued_requests,
    }


def import_job_fail(job_id: int, message: str) -> None:
    job = ImportJob.objects.filter(pk=job_id).first()
    if job and job.status in {ImportJob.Status.VALIDATING, ImportJob.Status.IMPORTING}:
        _finish(job, ImportJob.Status.FAILED, message=message)


def _finish(job: ImportJob, status: str, *, message: str = "") -> None:
    ImportJob.objects.filter(pk=job.pk).update(
        status=status, message=message, finished_at=timezone.now()
    )


# -- error report and eligibility ------------------------------------------------------------------
def error_report_rows(job: ImportJob) -> Iterator[list[str]]:
    """Rows of the downloadable report: every error and warning of the file, in file order."""
    yield ["row", "column", "level", "message", "vin"]
    with open_job_file(job) as stream:
        try:
            layout, batches = open_plan(
                stream, job.organization, update_existing=job.update_existing
            )
        except CsvFileError as exc:
            yield [str(exc.row or ""), "", "error", exc.message, ""]
            return
        for name in layout.unknown_columns:
            yield [str(layout.header_row), name, "warning", "Unknown column, ignored.", ""]
        try:
            for batch in batches:
                for row in _rows_in_order(batch):
                    # The VIN as written when it is not a valid one (csv_lines makes it
                    # formula-safe, like every cell of the report).
                    vin = row.vin or row.source_vin
                    for issue in row.errors:
                        yield [str(issue.row), issue.column, "error", issue.message, vin]
                    for issue in row.warnings:
                        yield [str(issue.row), issue.column, "warning", issue.message, vin]
        except CsvFileError as exc:
            yield [str(exc.row or ""), "", "error", exc.message, ""]


def _rows_in_order(batch: PlannedBatch) -> list[VehicleRow]:
    rows = [*batch.new, *batch.unchanged, *batch.invalid, *(row for _, row, _ in batch.updates)]
    return sorted((row for row in rows if row.errors or row.warnings), key=lambda row: row.row)


def check_new_vins_eligibility(job: ImportJob) -> dict[str, Any]:
    """Ask HM whether the first new VINs are eligible (one call per VIN, capped by a setting)."""
    limit = settings.IMPORT_ELIGIBILITY_CHECK_LIMIT
    credential = job_credential(job)
    result: dict[str, Any] = {
        "limit": limit,
        "checked": 0,
        "eligible": 0,
        "not_eligible": [],
        "failed": 0,
    }
    if credential is None:
        result["message"] = "No HM credential was chosen, so eligibility was not checked."
        return result
    try:
        from clearance.connect import hm_client_for
        from clearance.hm.types import ELIGIBILITY_BRANDS

        client = hm_client_for(credential)
    except (ImportError, AttributeError):
        result["message"] = "The eligibility check is not available in this installation."
        return result
    except Exception as exc:
        result["message"] = f"The eligibility check could not start: {exc}"
        return result
    with open_job_file(job) as stream:
        _, batches = open_plan(stream, job.organization, update_existing=job.update_existing)
        for batch in batches:
            for row in batch.new:
                if result["checked"] >= limit:
                    return result
                if row.brand not in ELIGIBILITY_BRANDS:
                    continue
                _check_one(client, row, result)
    return result


def _check_one(client: Any, row: VehicleRow, result: dict[str, Any]) -> None:
    result["checked"] += 1
    try:
        answer = client.check_eligibility(row.vin, row.brand)
    except Exception as exc:
        result["failed"] += 1
        if len(result["not_eligible"]) < 20:
            result["not_eligible"].append(
                {"row": row.row, "vin": row.vin, "reason": str(exc)[:200]}
            )
        return
    if answer.eligible:
        result["eligible"] += 1
    elif len(result["not_eligible"]) < 20:
        result["not_eligible"].append({"row": row.row, "vin": row.vin, "reason": "Not eligible"})
