"""Celery tasks of the HM lifecycle and the credential pages: ids in, re-load, call a service.

Clearance sends, defleets and vehicle token work are durable work (``HMWork``,
``durable/__init__.py``): their tasks are wakers that do one batch of due rows and wake again;
the reconciler replaces lost ones. The other tasks are queued with ``delay_on_commit`` and retried by the policy of ``clearance.work``.
Permanent errors are written on the clearance by the services. Every task has time limits.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError
from django.utils import timezone

from clearance.hm import PermanentError, TransientError
from clearance.models import Clearance, Credential, HMWork, WebhookDelivery
from clearance.services import (
    connection_check,
    credentials,
    defleet,
    sending,
    sync,
    token_work,
    webhooks,
)
from clearance.work import DURABLE_TASK, HM_TASK, BackgroundTask
from durable import work

logger = logging.getLogger(__name__)

REQUEST_SOFT_LIMIT = 240


@shared_task(**DURABLE_TASK, soft_time_limit=REQUEST_SOFT_LIMIT, time_limit=REQUEST_SOFT_LIMIT + 30)
def request_clearances(self: BackgroundTask, credential_id: int) -> None:
    """Waker: send one batch of the credential's due clearance sends, then wake again while more
    is due (the sends are durable rows; a lost or repeated message changes nothing)."""
    if not Credential.objects.filter(pk=credential_id).exists():
        return
    try:
        summary = sending.request_clearances(credential_id, max_batches=1, stop=work.stopping)
    except OperationalError as exc:
        self.retry_busy_database(exc)
    work.keep_going(
        request_clearances, credential_id, sending.send_work(credential_id), more=summary.more
    )


@shared_task(**HM_TASK, soft_time_limit=240, time_limit=270)
def sync_credential(self: BackgroundTask, credential_id: int) -> None:
    credential = Credential.objects.filter(pk=credential_id).first()
    if credential is None:
        return
    try:
        sync.sync_clearances(credential)
    except OperationalError as exc:
        self.retry_busy_database(exc)
    except TransientError as exc:
        self.retry_transient(exc)
    except (PermanentError, ValueError) as exc:
        # Refused for good (wrong secret, no fleet access) or incomplete: nothing to retry until
        # an owner fixes the credential; "Test connection" explains it in words.
        logger.warning("Sync of credential %s failed: %s", credential_id, exc)
        sync.remember_sync(credential_id, at=timezone.now(), error=str(exc))


@shared_task(base=BackgroundTask, bind=True, ignore_result=True, soft_time_limit=60, time_limit=90)
def sync_all_clearances(self: BackgroundTask) -> None:
    """Beat: one sync task per credential that has clearances to follow."""
    credential_ids = (
        Clearance.objects.exclude(credential__isnull=True)
        .values_list("credential_id", flat=True)
        .distinct()
    )
    for credential_id in credential_ids:
        sync_credential.delay_on_commit(credential_id)


@shared_task(**DURABLE_TASK, soft_time_limit=60, time_limit=90)
def confirm_webhooks(self: BackgroundTask, credential_id: int) -> None:
    """Waker: confirm the credential's due webhooks with one HM list call, then wake again while
    more are due (debounced by clearance.services.webhooks.schedule_confirmation)."""
    try:
        summary = webhooks.confirm_webhooks(credential_id)
    except OperationalError as exc:  # SQLite "database is locked" under concurrent writers
        self.retry_busy_database(exc)
    work.keep_going(
        confirm_webhooks, credential_id, webhooks.unconfirmed(credential_id), more=summary.more
    )


@shared_task(**HM_TASK, soft_time_limit=30, time_limit=60)
def process_webhook(self: BackgroundTask, delivery_pk: int) -> None:
    """Messages queued before webhooks were confirmed with HM: wake the confirmation."""
    credential_id = (
        WebhookDelivery.objects.filter(pk=delivery_pk)
        .values_list("credential_id", flat=True)
        .first()
    )
    if credential_id is not None:
        confirm_webhooks.delay(credential_id)


@shared_task(
    base=BackgroundTask, bind=True, ignore_result=True, soft_time_limit=600, time_limit=660
)
def prune_webhook_deliveries(self: BackgroundTask) -> None:
    """Beat: delete confirmed deliveries older than WEBHOOK_DELIVERY_RETENTION_DAYS."""
    deleted = webhooks.prune_deliveries()
    if deleted:
        logger.info("Deleted %s webhook deliveries past their retention", deleted)


@shared_task(**DURABLE_TASK, soft_time_limit=REQUEST_SOFT_LIMIT, time_limit=REQUEST_SOFT_LIMIT + 30)
def defleet_due(self: BackgroundTask, credential_id: int) -> None:
    """Waker: one batch of the credential's due defleets, then wake again while more is due."""
    try:
        _done, more = defleet.defleet_due(credential_id, stop=work.stopping)
    except OperationalError as exc:
        self.retry_busy_database(exc)
    work.keep_going(defleet_due, credential_id, defleet.defleet_work(credential_id), more=more)


@shared_task(**HM_TASK, soft_time_limit=60, time_limit=90)
def defleet_vehicles(
    self: BackgroundTask, vehicle_ids: list[int], actor_id: int | None = None
) -> None:
    """Messages queued before defleets were durable work: written as work rows now."""
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    defleet.queue_defleet(vehicle_ids, actor=actor)


@shared_task(**DURABLE_TASK, soft_time_limit=REQUEST_SOFT_LIMIT, time_limit=REQUEST_SOFT_LIMIT + 30)
def vehicle_token_work(self: BackgroundTask, credential_id: int) -> None:
    """Waker: one batch of the credential's due vehicle token work (issue, renew, revoke), then
    wake again while more is due."""
    try:
        _done, more = token_work.token_work_due(credential_id, stop=work.stopping)
    except OperationalError as exc:
        self.retry_busy_database(exc)
    work.keep_going(
        vehicle_token_work, credential_id, token_work.token_work(credential_id), more=more
    )


@shared_task(**HM_TASK, soft_time_limit=30, time_limit=60)
def refresh_vehicle_tokens(self: BackgroundTask) -> None:
    """Beat: a renewal row for every token about to expire that has none (tokens stored before
    renewals were durable work); the renewals themselves are the waker's."""
    token_work.schedule_missing_renewals()


# Messages queued before token work was durable: written as work rows now.
@shared_task(**HM_TASK, soft_time_limit=30, time_limit=60)
def issue_vehicle_tokens(self: BackgroundTask, clearance_ids: list[int]) -> None:
    token_work.queue(HMWork.Kind.TOKEN_ISSUE, token_work.clearance_pairs(clearance_ids))


@shared_task(**HM_TASK, soft_time_limit=30, time_limit=60)
def refresh_vehicle_token(self: BackgroundTask, token_pk: int) -> None:
    pairs = token_work.clearance_pairs(None, vehicle_token__pk=token_pk)
    token_work.queue(HMWork.Kind.TOKEN_REFRESH, pairs)


@shared_task(**HM_TASK, soft_time_limit=30, time_limit=60)
def revoke_vehicle_tokens(self: BackgroundTask, clearance_ids: list[int]) -> None:
    pairs = token_work.clearance_pairs(clearance_ids, vehicle_token__isnull=False)
    token_work.queue(HMWork.Kind.TOKEN_REVOKE, pairs)


@shared_task(**HM_TASK, soft_time_limit=90, time_limit=120)
def test_connection(self: BackgroundTask, credential_id: int) -> None:
    """Get a fresh token and list the fleet; store the outcome, in words, on the credential."""
    try:
        credential = Credential.objects.filter(pk=credential_id).first()
    except ImproperlyConfigured as exc:  # a secret that no configured key can decrypt
        Credential.objects.filter(pk=credential_id).update(
            last_check_ok=False, last_check_message=str(exc)
        )
        return
    if credential is None:
        return
    result = connection_check.check_connection(credential)
    logger.info(
        "Connection test for credential %s: %s (%s)", credential.public_id, result.kind, result.ok
    )
    credentials.record_check(credential, ok=result.ok, message=result.message)


test_connection.__test__ = False  # not a pytest test, despite its name
