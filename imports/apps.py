from datetime import datetime
from typing import Any

from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "CSV imports"

    def ready(self) -> None:
        from functools import partial

        from durable import work
        from imports import tasks
        from imports.models import ImportWork

        # The reconciler wakes the check or the next batch of every job with due work.
        for kind, task in (
            (ImportWork.Kind.CHECK, tasks.validate_import_job),
            (ImportWork.Kind.BATCH, tasks.run_import_job),
        ):
            work.register(
                f"imports.{kind}", due=partial(_due_jobs, kind), wake=partial(_wake, task)
            )


def _wake(task: Any, job_id: int) -> None:
    task.delay(job_id)


def _due_jobs(kind: str, now: datetime) -> list[Any]:
    from durable import work
    from imports.models import ImportWork

    return work.due_keys(ImportWork.objects.filter(kind=kind), "job_id", now)
