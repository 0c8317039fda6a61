"""Thin Celery tasks for CSV imports (queue "imports"): take an id, call a service."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

TRANSIENT = (OperationalError, InterfaceError)


def _failed(message: str):  # type: ignore[no-untyped-def]
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:  # type: ignore[no-untyped-def]
        from imports import services

        services.import_job_fail(args[0], message)

    return on_failure


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=settings.IMPORT_TASK_TIME_LIMIT,
    time_limit=settings.IMPORT_TASK_TIME_LIMIT + 60,
    on_failure=_failed("Checking the file failed unexpectedly. Please upload it again."),
)
def validate_import_job(self, job_id: int) -> None:
    from imports import services

    services.import_job_validate(job_id)


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=settings.IMPORT_TASK_TIME_LIMIT,
    time_limit=settings.IMPORT_TASK_TIME_LIMIT + 60,
    on_failure=_failed(
        "The import stopped unexpectedly. Vehicles imported so far are kept; "
        "uploading the file again imports the rest."
    ),
)
def run_import_job(self, job_id: int) -> None:
    from imports import services

    services.import_job_run(job_id)
