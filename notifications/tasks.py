"""Notification tasks: wakers that claim due delivery rows, and the periodic evaluations.

What to send lives in PostgreSQL (``EventDelivery``, ``OutgoingEmail``); a task only wakes a
worker to look. Each is queued after the commit that made work due (``delay_on_commit`` of
clearance/work.py: a broker outage is logged, never raised), and beat's ``wake_deliveries``
(every ``DELIVERY_RECONCILE_SECONDS``) wakes whatever is due anyway, so a lost, duplicated or
delayed message costs at most one interval, never a delivery. Retries are per delivery row
(notifications/delivery.py), not Celery retries.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.worker import state as worker_state

from clearance.work import BackgroundTask
from notifications import delivery, digests, emails, evaluation, webhook_sender
from notifications.models import EventDelivery, OutgoingEmail

logger = logging.getLogger(__name__)

TASK: dict[str, Any] = {
    "base": BackgroundTask,
    "bind": True,
    "ignore_result": True,
    "acks_late": True,
}
# A retry due within this many seconds is also hinted with a delayed message; later ones are
# left to the reconciler (long countdowns sit in the broker, and outlive its visibility timeout).
HINT_HORIZON_SECONDS = 300
# Senders woken at once when many deliveries are due.
PARALLEL_SENDERS = 4
# A sender stops after this long (and continues in a new task), or at once between two
# deliveries when its worker is asked to stop, so a warm shutdown never waits for a backlog.
SEND_BUDGET_SECONDS = 20


def shutting_down() -> bool:
    return bool(worker_state.should_stop or worker_state.should_terminate)


@shared_task(**TASK, soft_time_limit=SEND_BUDGET_SECONDS + 40, time_limit=SEND_BUDGET_SECONDS + 70)
def send_webhooks(self) -> None:
    """Deliver due outgoing webhooks; continues itself while more are due."""
    _done, more = webhook_sender.send_due(budget_seconds=SEND_BUDGET_SECONDS, stop=shutting_down)
    if more and not shutting_down():
        send_webhooks.delay_on_commit()


@shared_task(**TASK, soft_time_limit=SEND_BUDGET_SECONDS + 40, time_limit=SEND_BUDGET_SECONDS + 70)
def send_emails(self) -> None:
    """Send due notification emails; continues itself while more are due."""
    _done, more = emails.send_due(budget_seconds=SEND_BUDGET_SECONDS, stop=shutting_down)
    if more and not shutting_down():
        send_emails.delay_on_commit()


@shared_task(base=BackgroundTask, bind=True, ignore_result=True, soft_time_limit=30, time_limit=60)
def wake_deliveries(self) -> None:
    """Beat: wake a sender for whatever is due (messages lost, broker down, retries)."""
    due_webhooks = delivery.due(EventDelivery).count()
    for _ in range(min(due_webhooks, PARALLEL_SENDERS)):
        send_webhooks.delay_on_commit()
    if delivery.due(OutgoingEmail).exists():
        send_emails.delay_on_commit()


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
