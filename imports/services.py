"""An import job's life: upload -> check (preview) -> confirm -> import in batches -> done.

Planning is in ``imports.planning``, writing in ``imports.writing``, the stored file in
``imports.files``. Idempotent: VINs already in the fleet are skipped (or updated with
``update_existing``), so importing the same file twice changes nothing the second time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from functools import partial
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from clearance.models import Credential
from imports import tasks
from imports.eligibility import check_new_vins_eligibility, job_credential
from imports.files import _chunks, job_file_kept, open_job_file, prune_old_files
from imports.models import ImportChunk, ImportJob, ImportRow
from imports.parse import CsvFileError
from imports.planning import (
    STALE_PREVIEW,
    Counts,
    ImportRejected,
    PlannedBatch,
    PreviewStale,
    fleet_state,
    layout_summary,
    open_plan,
    plan_issues,
    preview_is_stale,
)
from imports.rows import VehicleRow
from imports.writing import Stager, analyze, write_batch
from organizations.models import Organization
from vehicles import events as fleet_events

logger = logging.getLogger(__name__)


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
        tasks.validate_import_job.delay_on_commit(job.pk, on_error=partial(_not_queued, job.pk))
    prune_old_files()
    return job


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
    stager = Stager(job_id)
    stager.reset()  # a check that was interrupted, or a check again
    try:
        with open_job_file(job) as stream:
            plan = plan_issues(
                stream,
                job.organization,
                update_existing=job.update_existing,
                on_batch=progress,
                stage=stager.add,
            )
    except CsvFileError as exc:
        stager.reset()
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
    if preview_is_stale(job) or not ImportRow.objects.filter(job=job).exists():
        # (No staged rows: checked by an older version, which staged nothing.)
        raise PreviewStale(STALE_PREVIEW)
    with transaction.atomic():
        # Errors and warnings stay the preview's: the file was validated once, and the fleet
        # has not changed since (else the preview would be stale).
        started = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.PREVIEW).update(
            status=ImportJob.Status.IMPORTING,
            confirmed_at=timezone.now(),
            confirmed_by=user,
            processed=0,
            created=0,
            updated=0,
            skipped=0,
            queued_requests=0,
        )
        if not started:
            raise ImportRejected("This import was already started.")
        tasks.run_import_job.delay_on_commit(job.pk, on_error=partial(_not_queued, job.pk))


def import_job_recheck(job: ImportJob) -> None:
    """Validate a previewed job's file again (against the fleet as it is now); new preview."""
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
        tasks.validate_import_job.delay_on_commit(job.pk, on_error=partial(_not_queued, job.pk))


def import_job_cancel(job: ImportJob) -> None:
    canceled = ImportJob.objects.filter(
        pk=job.pk, status__in=[ImportJob.Status.PREVIEW, ImportJob.Status.UPLOADED]
    ).update(status=ImportJob.Status.CANCELED, finished_at=timezone.now())
    if not canceled:
        raise ImportRejected("Only an import that has not started can be canceled.")
    ImportChunk.objects.filter(job=job).delete()
    ImportRow.objects.filter(job=job).delete()


def import_job_step(job_id: int) -> bool:
    """Task body: import the job's next batch of staged rows; True while more batches remain.

    The batch and the job's progress commit together, under the job's row lock, so a task run
    twice (redelivered, duplicated) never writes a batch twice: it finds ``processed`` moved on.
    The last batch marks the job done, then the touched tables are analysed.
    """
    with transaction.atomic():
        rows = ImportJob.objects.select_related("organization", "confirmed_by").filter(
            pk=job_id, status=ImportJob.Status.IMPORTING
        )
        if connection.features.has_select_for_update_skip_locked:
            # Another worker has this job's batch in hand: it goes on with the next one.
            rows = rows.select_for_update(skip_locked=True, of=("self",))
        job = rows.first()
        if job is None:
            return False
        after = job.processed
        upto = min(after + settings.IMPORT_BATCH_SIZE, job.total)
        counts = write_batch(
            job, after=after, upto=upto, credential=job_credential(job), actor=job.confirmed_by
        )
        fields: dict[str, Any] = {
            name: F(name) + getattr(counts, name)
            for name in ("created", "updated", "skipped", "queued_requests")
        }
        done = upto >= job.total
        if done:
            fields.update(status=ImportJob.Status.DONE, finished_at=timezone.now())
            ImportRow.objects.filter(job=job).delete()
        ImportJob.objects.filter(pk=job_id).update(processed=upto, **fields)
        if done:
            publish_finished(job_id)
    if done:
        analyze()
    return not done


def import_job_run(job_id: int) -> None:
    """Import every remaining batch of the job in this process (tests, the terminal command);
    workers do one batch per task (``tasks.run_import_job``)."""
    while import_job_step(job_id):
        pass


def import_rows(
    stream: BinaryIO,
    organization: Organization,
    *,
    credential: Credential | None,
    user: Any = None,
    update_existing: bool,
    name: str = "",
) -> ImportJob:
    """Check and import a file in this process (the ``vehicles_import`` command): the same
    validation, staging and batches as an upload, recorded as an import job of the fleet.
    Raises ``CsvFileError`` when the file cannot be read (nothing imported then)."""
    job = ImportJob.objects.create(
        organization=organization,
        created_by=user if getattr(user, "pk", None) else None,
        original_name=name[:255],
        update_existing=update_existing,
        credential_public_id=credential.public_id if credential else None,
        status=ImportJob.Status.VALIDATING,
    )
    stager = Stager(job.pk)
    try:
        plan = plan_issues(stream, organization, update_existing=update_existing, stage=stager.add)
    except CsvFileError as exc:
        _finish(job, ImportJob.Status.FAILED, message=exc.message)
        raise
    now = timezone.now()
    fields = plan.counts.as_fields()
    fields.update(created=0, updated=0, skipped=0, queued_requests=0)
    ImportJob.objects.filter(pk=job.pk).update(
        **fields,
        layout=layout_summary(plan.layout),
        error_sample=plan.sample,
        status=ImportJob.Status.IMPORTING,
        validated_at=now,
        confirmed_at=now,
        confirmed_by=user if getattr(user, "pk", None) else None,
    )
    try:
        import_job_run(job.pk)
    except Exception:
        _finish(job, ImportJob.Status.FAILED, message=tasks.IMPORT_FAILED)
        raise
    job.refresh_from_db()
    return job


def import_job_fail(job_id: int, message: str) -> None:
    job = ImportJob.objects.filter(pk=job_id).first()
    if job and job.status in {ImportJob.Status.VALIDATING, ImportJob.Status.IMPORTING}:
        _finish(job, ImportJob.Status.FAILED, message=message)


NOT_QUEUED = (
    "The import could not be started: the task queue is unreachable, so no background worker "
    "can run it. Upload the file again in a minute; if it keeps failing, ask whoever runs "
    "FleetPortal to check the task queue (Redis)."
)


def _not_queued(job_id: int) -> None:
    """The job's task could not be handed to the broker: say so on the job, not with a 500."""
    job = ImportJob.objects.filter(pk=job_id).first()
    if job and job.is_running:
        _finish(job, ImportJob.Status.FAILED, message=NOT_QUEUED)


def _finish(job: ImportJob, status: str, *, message: str = "") -> None:
    with transaction.atomic():
        ImportJob.objects.filter(pk=job.pk).update(
            status=status, message=message, finished_at=timezone.now()
        )
        ImportRow.objects.filter(job=job).delete()
        if job.confirmed_at is not None:  # an import that ran, not a file refused at preview
            publish_finished(job.pk)


# What an import.finished event counts.
FINISHED_COUNTS = (
    "total",
    "processed",
    "created",
    "updated",
    "skipped",
    "errors",
    "warnings",
    "queued_requests",
)


def publish_finished(job_id: int) -> None:
    """Tell the fleet's listeners (outgoing webhooks) that a confirmed import ended."""
    job = ImportJob.objects.get(pk=job_id)
    fleet_events.publish(
        [
            fleet_events.ImportFinished(
                organization_id=job.organization_id,
                import_id=str(job.public_id),
                file_name=job.original_name,
                status=job.status,
                finished_at=job.finished_at or timezone.now(),
                counts={name: getattr(job, name) for name in FINISHED_COUNTS},
                message=job.message,
            )
        ]
    )


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
