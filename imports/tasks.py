"""Thin Celery tasks for CSV imports (queue "imports"): take an id, call a service.

A database that is briefly unreachable is retried by the one policy of ``clearance.work``; an
import that fails for good is marked failed, in words, on its job.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from clearance.work import BackgroundTask
from imports import services

TRANSIENT = (OperationalError, InterfaceError)

CHECK_FAILED = "Checking the file failed unexpectedly. Please upload it again."
IMPORT_FAILED = (
    "The import stopped unexpectedly. Vehicles imported so far are kept; "
    "uploading the file again imports the rest."
)


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


@shared_task(base=ImportTask, failure_message=CHECK_FAILED, **IMPORT_TASK)
def validate_import_job(self: ImportTask, job_id: int) -> None:
    try:
        services.import_job_validate(job_id)
    except TRANSIENT as exc:
        if not self.retry_later(exc):
            raise


@shared_task(base=ImportTask, failure_message=IMPORT_FAILED, **IMPORT_TASK)
def run_import_job(self: ImportTask, job_id: int) -> None:
    """One batch of the import, then the next batch is a task of its own (short tasks)."""
    try:
        more = services.import_job_step(job_id)
    except TRANSIENT as exc:
        if not self.retry_later(exc):
            raise
        return
    if more:
        run_import_job.delay_on_commit(job_id)
