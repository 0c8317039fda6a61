from datetime import datetime
from typing import Any

from django.apps import AppConfig


class ClearanceConfig(AppConfig):
    name = "clearance"
    verbose_name = "Clearance (High Mobility)"

    def ready(self) -> None:
        from functools import partial

        from clearance import tasks
        from clearance.models import HMWork
        from durable import work

        # The reconciler wakes a sender per credential with due sends or defleets.
        for kind, task in (
            (HMWork.Kind.SEND, tasks.request_clearances),
            (HMWork.Kind.DEFLEET, tasks.defleet_due),
        ):
            work.register(
                f"clearance.{kind}", due=partial(_due_credentials, kind), wake=partial(_wake, task)
            )


def _wake(task: Any, credential_id: int) -> None:
    task.delay(credential_id)


def _due_credentials(kind: str, now: datetime) -> list[int]:
    from clearance.models import HMWork
    from durable import work

    return work.due_keys(HMWork.objects.filter(kind=kind), "credential_id", now)
