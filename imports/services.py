"""An import job's life: upload -> check (preview) -> confirm -> import in batches -> done.

Planning is in ``imports.planning``, writing in ``imports.writing``, the stored file in
``imports.files``. Idempotent: VINs already in the fleet are skipped (or updated with
``update_existing``), so importing the same file twice changes nothing the second time.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from audit import log as audit
from audit.models import Action
from clearance.models import Credential
from durable import work
from durable.models import ACTIVE_STATES
from imports import tasks
from imports.eligibility import check_new_vins_eligibility, job_credential
from imports.files import _chunks, job_file_kept, open_job_file, prune_old_files
from imports.models import ImportChunk, ImportJob, ImportRow, ImportWork
from imports.parse import CsvFileError
from imports.planning import (
    STALE_PREVIEW,
    Counts,
    ImportRejected,
    PlannedBatch,
    PreviewStale,
    fleet_state,
    layout_summary,
    plan_issues,
    preview_is_stale,
)
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
        # The check is durable work, stored with the upload: a task message lost (or a broker
        # that is down) delays it until the reconciler's next round, never loses it.
        ImportWork.objects.create(job=job, kind=ImportWork.Kind.CHECK)
        tasks.validate_import_job.delay_on_commit(job.pk)
    prune_old_files()
    return job


class CheckTakenOver(Exception):
    """This check's lease ran out and another worker started the check again: stop quietly."""


def import_job_validate(job_id: int) -> None:
    """Task body: read the whole file, stage its valid rows, fill the preview counts, then
    status ``preview``. Claims the job's due check (a lease that every staged batch extends);
    a check killed part-way is started again from the beginning once its lease ran out."""
    lease = settings.IMPORT_CHECK_LEASE_SECONDS
    claimed = list(work.claim(check_work(job_id), limit=1, lease_seconds=lease))
    if not claimed:
        return  # done, or another worker has it
    token = claimed[0].claim
    started = ImportJob.objects.filter(
        pk=job_id, status__in=[ImportJob.Status.UPLOADED, ImportJob.Status.VALIDATING]
    ).update(status=ImportJob.Status.VALIDATING, total=0)
    if not started:
        work.complete(ImportWork, claimed)
        return
    job = ImportJob.objects.select_related("organization").get(pk=job_id)

    def progress(counts: Counts) -> None:
        ImportJob.objects.filter(pk=job_id).update(total=counts.total)

    def stage(batch: PlannedBatch) -> None:
        """Stage a batch and extend the lease, together; stop if the check was taken over
        (its lease ran out while this worker was too slow, and another one started again)."""
        with transaction.atomic():
            renewed = ImportWork.objects.filter(pk=claimed[0].pk, claim=token).update(
                next_attempt_at=timezone.now() + timedelta(seconds=lease)
            )
            if not renewed:
                raise CheckTakenOver
            stager.add(batch)

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
                stage=stage,
            )
    except CheckTakenOver:
        return
    except CsvFileError as exc:
        stager.reset()
        _finish(job, ImportJob.Status.FAILED, message=exc.message)
        return
    fields = plan.counts.as_fields()
    fields.pop("queued_requests")
    eligibility = check_new_vins_eligibility(job) if job.check_eligibility else {}
    with transaction.atomic():
        ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.VALIDATING).update(
            **fields,
            layout={**layout_summary(plan.layout), "fleet_state": state},
            error_sample=plan.sample,
            eligibility=eligibility,
            status=ImportJob.Status.PREVIEW,
            validated_at=timezone.now(),
        )
        work.complete(ImportWork, ImportWork.objects.filter(pk=claimed[0].pk, claim=token))


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
        audit.record(
            Action.IMPORT_CONFIRMED,
            organization_id=job.organization_id,
            target=audit.Target(
                "import",
                job.public_id,
                job.original_name,
                {"new": job.created, "to update": job.updated, "rows with errors": job.errors},
            ),
        )
        ImportWork.objects.create(job=job, kind=ImportWork.Kind.BATCH)
        tasks.run_import_job.delay_on_commit(job.pk)


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
        ImportWork.objects.create(job=job, kind=ImportWork.Kind.CHECK)
        tasks.validate_import_job.delay_on_commit(job.pk)


def import_job_cancel(job: ImportJob) -> None:
    canceled = ImportJob.objects.filter(
        pk=job.pk, status__in=[ImportJob.Status.PREVIEW, ImportJob.Status.UPLOADED]
    ).update(status=ImportJob.Status.CANCELED, finished_at=timezone.now())
    if not canceled:
        raise ImportRejected("Only an import that has not started can be canceled.")
    ImportChunk.objects.filter(job=job).delete()
    ImportRow.objects.filter(job=job).delete()
    work.complete(ImportWork, ImportWork.objects.filter(job=job, state__in=ACTIVE_STATES))


def import_job_step(job_id: int) -> bool:
    """Task body: import the job's next batch of staged rows; True while more batches remain.

    The batch and the job's progress commit together, under the job's row lock, so a task run
    twice (redelivered, duplicated) never writes a batch twice: it finds ``processed`` moved on.
    The last batch marks the job done, then the touched tables are analysed.
    """
    with transaction.atomic():
        # The job's batch work, locked for this transaction only (durable.work.lock_due):
        # another worker's duplicate skips it; a worker killed here leaves it due at once.
        pending = work.lock_due(batch_work(job_id))
        if not pending:
            return False
        job = (
            ImportJob.objects.select_for_update(of=("self",))
            .select_related("organization", "confirmed_by")
            .filter(pk=job_id, status=ImportJob.Status.IMPORTING)
            .first()
        )
        if job is None:  # failed or canceled meanwhile
            work.complete(ImportWork, pending)
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
            work.complete(ImportWork, pending)
        else:  # the next batch is due now; a batch that went through clears earlier failures
            ImportWork.objects.filter(pk=pending[0].pk).update(
                attempts=0, last_error="", next_attempt_at=timezone.now()
            )
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
    ImportWork.objects.create(job=job, kind=ImportWork.Kind.BATCH)
    try:
        import_job_run(job.pk)
    except Exception:
        _finish(job, ImportJob.Status.FAILED, message=tasks.IMPORT_FAILED)
        raise
    job.refresh_from_db()
    return job


def import_job_fail(job_id: int, message: str) -> None:
    """A task failed for good (not a passing database error): the job fails, in words."""
    job = ImportJob.objects.filter(pk=job_id).first()
    if job and job.status in {ImportJob.Status.VALIDATING, ImportJob.Status.IMPORTING}:
        _finish(job, ImportJob.Status.FAILED, message=message)


def import_job_retry_later(job_id: int, kind: str, words: str) -> None:
    """A passing failure (a database deadlock, a lost connection): the job's due work of
    ``kind`` is tried again after its backoff, and the job page says why and when."""
    open_work = ImportWork.objects.filter(job_id=job_id, kind=kind, state__in=ACTIVE_STATES)
    if kind == ImportWork.Kind.BATCH:  # locked without a claim: count the failed attempt here
        open_work.update(attempts=F("attempts") + 1)
    rows = list(open_work)
    if rows:
        work.retry(ImportWork, rows, words)


def check_work(job_id: int) -> QuerySet[ImportWork]:
    return ImportWork.objects.filter(job_id=job_id, kind=ImportWork.Kind.CHECK)


def batch_work(job_id: int) -> QuerySet[ImportWork]:
    return ImportWork.objects.filter(job_id=job_id, kind=ImportWork.Kind.BATCH)


def _finish(job: ImportJob, status: str, *, message: str = "") -> None:
    with transaction.atomic():
        ImportJob.objects.filter(pk=job.pk).update(
            status=status, message=message, finished_at=timezone.now()
        )
        ImportRow.objects.filter(job=job).delete()
        open_work = ImportWork.objects.filter(job=job, state__in=ACTIVE_STATES)
        if status == ImportJob.Status.FAILED:
            work.give_up(ImportWork, open_work, message)
        else:
            work.complete(ImportWork, open_work)
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
