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
        # ... a token worker per credential with vehicle token work due ...
        work.register(
            "clearance.tokens",
            due=_due_token_credentials,
            wake=partial(_wake, tasks.vehicle_token_work),
        )
        # ... and a confirmation per credential with webhooks waiting.
        work.register(
            "clearance.webhooks",
            due=_due_webhook_credentials,
            wake=partial(_wake, tasks.confirm_webhooks),
        )


def _wake(task: Any, credential_id: int) -> None:
    task.delay(credential_id)


def _due_webhook_credentials(now: datetime) -> list[int]:
    from clearance.models import WebhookDelivery
    from durable import work

    return work.due_keys(WebhookDelivery.objects.all(), "credential_id", now)


def _due_credentials(kind: str, now: datetime) -> list[int]:
    from clearance.models import HMWork
    from durable import work

    return work.due_keys(HMWork.objects.filter(kind=kind), "credential_id", now)


def _due_token_credentials(now: datetime) -> list[int]:
    from clearance.models import HMWork
    from clearance.services.token_work import TOKEN_KINDS
    from durable import work

    return work.due_keys(HMWork.objects.filter(kind__in=TOKEN_KINDS), "credential_id", now)
