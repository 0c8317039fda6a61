"""Thin Celery tasks for CSV imports (queue "imports"): take a job id, do what is due for it.

The work itself is durable (``ImportWork`` rows, see ``durable/__init__.py``): a task only
wakes it. A message lost, duplicated or killed with its worker costs at most one reconciler
interval. A passing database error is retried after the work row's own backoff (the job page
says so); any other failure fails the job, in words.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from clearance.work import BackgroundTask
from durable import work
from imports import services
from imports.models import ImportWork

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError)

CHECK_FAILED = "Checking the file failed unexpectedly. Please upload it again."
IMPORT_FAILED = (
    "The import stopped unexpectedly. Vehicles imported so far are kept; "
    "uploading the file again imports the rest."
)


def database_words(exc: Exception) -> str:
    return f"The database could not be reached or was busy ({type(exc).__name__})."


class ImportTask(BackgroundTask):
    """Marks the job failed, with ``failure_message``, once the task fails for good."""

    failure_message = ""

    def on_failure(self, exc: Any, task_id: Any, args: Any, kwargs: Any, einfo: Any) -> None:
        services.import_job_fail(args[0], self.failure_message)


IMPORT_TASK: dict[str, Any] = {
    "bind": True,
    # Acknowledged once done; a worker killed mid-task (even only its child process, as the OOM
    # killer does) puts the message back: a batch is written exactly once whatever runs it.
    "acks_late": True,
    "reject_on_worker_lost": True,
    "soft_time_limit": settings.IMPORT_TASK_TIME_LIMIT,
    "time_limit": settings.IMPORT_TASK_TIME_LIMIT + 60,
}


def _passing(job_id: int, kind: str, exc: Exception) -> None:
    """The database failed for a passing reason: the work waits for its backoff (if the
    database can take even that; else the reconciler finds it due)."""
    logger.warning("Import %s: %s; it is tried again later", job_id, exc)
    with contextlib.suppress(*TRANSIENT):
        services.import_job_retry_later(job_id, kind, database_words(exc))


@shared_task(base=ImportTask, failure_message=CHECK_FAILED, **IMPORT_TASK)
def validate_import_job(self: ImportTask, job_id: int) -> None:
    try:
        services.import_job_validate(job_id)
    except TRANSIENT as exc:
        _passing(job_id, ImportWork.Kind.CHECK, exc)


@shared_task(base=ImportTask, failure_message=IMPORT_FAILED, **IMPORT_TASK)
def run_import_job(self: ImportTask, job_id: int) -> None:
    """One batch of the import; the next batch is a task of its own (short tasks)."""
    try:
        more = services.import_job_step(job_id)
    except TRANSIENT as exc:
        _passing(job_id, ImportWork.Kind.BATCH, exc)
        more = False
    with contextlib.suppress(*TRANSIENT):  # else the reconciler wakes it
        work.keep_going(run_import_job, job_id, services.batch_work(job_id), more=more)
