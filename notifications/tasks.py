"""Notification tasks: wakers that claim due delivery rows, and the periodic evaluations.

What to send lives in PostgreSQL (``EventDelivery``, ``OutgoingEmail``): durable work
(durable/__init__.py). A sender is woken after the commit that made work due (``wake_webhooks``,
``wake_emails``: a broker outage is logged, never raised), and the reconciler wakes whatever is
due every ``RECONCILE_INTERVAL_SECONDS`` (notifications/apps.py registers both kinds), so a lost,
duplicated or delayed message costs at most one interval, never a delivery. Retries are per
delivery row (notifications/delivery.py), not Celery retries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import shared_task

from clearance.work import DURABLE_TASK, BackgroundTask
from durable import work
from notifications import digests, emails, evaluation, webhook_sender
from notifications.models import EventDelivery, OutgoingEmail

logger = logging.getLogger(__name__)

# A sender stops after this long (and continues in a new task), or at once between two
# deliveries when its worker is asked to stop, so a warm shutdown never waits for a backlog.
SEND_BUDGET_SECONDS = 20


@shared_task(
    **DURABLE_TASK, soft_time_limit=SEND_BUDGET_SECONDS + 40, time_limit=SEND_BUDGET_SECONDS + 70
)
def send_webhooks(self, endpoint_id: int | None = None) -> None:
    """Waker: deliver the endpoint's due webhooks (any endpoint's without one); continues itself
    while more are due, and hints the next retry when it is due within a reconciler interval."""
    _done, more = webhook_sender.send_due(endpoint_id, budget_seconds=SEND_BUDGET_SECONDS)
    work.keep_going(send_webhooks, endpoint_id, webhook_sender.work_of(endpoint_id), more=more)


@shared_task(
    **DURABLE_TASK, soft_time_limit=SEND_BUDGET_SECONDS + 40, time_limit=SEND_BUDGET_SECONDS + 70
)
def send_emails(self, organization_id: int | None = None) -> None:
    """Waker: send the organization's due emails (any organization's without one); as above."""
    _done, more = emails.send_due(organization_id, budget_seconds=SEND_BUDGET_SECONDS)
    work.keep_going(send_emails, organization_id, emails.work_of(organization_id), more=more)


def wake_webhooks(deliveries: Iterable[EventDelivery]) -> None:
    """After commit: one sender per endpoint these new deliveries go to (so a slow receiver
    never holds up another's)."""
    for endpoint_id in sorted({row.endpoint_id for row in deliveries}):
        work.wake_on_commit(send_webhooks, endpoint_id)


def wake_emails(rows: Iterable[OutgoingEmail]) -> None:
    """After commit: one sender per organization these new emails belong to."""
    for organization_id in sorted({row.organization_id for row in rows}):
        work.wake_on_commit(send_emails, organization_id)


@shared_task(
    base=BackgroundTask, bind=True, ignore_result=True, soft_time_limit=240, time_limit=270
)
def evaluate_alert_rules(self) -> None:
    """Beat: the time-based rules (pending too long, silent) over the whole fleet."""
    evaluation.evaluate_time_rules()


@shared_task(
    base=BackgroundTask, bind=True, ignore_result=True, soft_time_limit=120, time_limit=150
)
def prepare_digests(self) -> None:
    """Beat: write the daily digests that are due in their members' time zones."""
    digests.prepare_digests()
