"""What an import says about itself: its open work and when it is tried next (in words, for the
job page), where it stands (from the database alone: operators, fault tests), and the report of
every error and warning of its file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.utils import timezone

from durable.models import ACTIVE_STATES, WorkState
from imports.files import open_job_file
from imports.models import ImportJob, ImportRow, ImportWork
from imports.parse import CsvFileError
from imports.planning import (
    PlannedBatch,
    open_plan,
)
from imports.rows import VehicleRow
from imports.services import FINISHED_COUNTS


def pending_work(job: ImportJob) -> ImportWork | None:
    """The job's open background work (what the page says is pending, and when it is tried)."""
    return job.work.filter(state__in=ACTIVE_STATES).order_by("next_attempt_at").first()


def import_progress(job_id: int) -> dict[str, Any]:
    """Where an import stands, from the database alone (operators, fault tests): the job's
    status and counts, and its open work with when it is tried next and the last failure."""
    job = ImportJob.objects.get(pk=job_id)
    open_work = pending_work(job)
    return {
        "status": job.status,
        **{name: getattr(job, name) for name in FINISHED_COUNTS},
        "staged": ImportRow.objects.filter(job_id=job_id).count(),
        "work": None
        if open_work is None
        else {
            "kind": open_work.kind,
            "state": open_work.state,
            "attempts": open_work.attempts,
            "next_attempt_at": open_work.next_attempt_at,
            "last_error": open_work.last_error,
        },
        "message": job.message,
    }


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


def pending_words(job: ImportJob, pending: ImportWork | None) -> str:
    """What the job page says is pending and when it is tried next, in words."""
    if pending is None:
        return ""
    now = timezone.now()
    at = timezone.localtime(pending.next_attempt_at)
    when = at.strftime("%H:%M:%S")
    wait = max(0, round((pending.next_attempt_at - now).total_seconds()))
    interval = settings.RECONCILE_INTERVAL_SECONDS
    if pending.kind == ImportWork.Kind.CHECK:
        what = "checking the file"
    else:
        first = job.processed + 1
        last = min(job.processed + settings.IMPORT_BATCH_SIZE, job.total)
        what = f"importing rows {first:,}–{last:,} of {job.total:,}"
    if pending.last_error:
        tries = f" after {pending.attempts} failed attempts" if pending.attempts > 1 else ""
        return (
            f"Pending: {what}. It failed{tries} and is tried again at {when} (in {wait} s): "
            f"{pending.last_error}"
        )
    if pending.state == WorkState.RUNNING:
        return (
            f"In progress: {what}. If it is interrupted, it starts again by {when} at the latest."
        )
    if wait > 0:
        return f"Pending: {what}, at {when} (in {wait} s)."
    return (
        f"Pending: {what}, due now; a background worker takes it up within {interval} s "
        "(if none is running, it waits for one)."
    )
