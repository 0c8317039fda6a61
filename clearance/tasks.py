"""Celery tasks of the HM lifecycle and the credential pages: ids in, re-load, call a service.

Queued with ``delay_on_commit`` and retried by the one policy of ``clearance.work``. Permanent
errors are written on the clearance by the services. Every task has a soft and a hard time limit.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connection
from django.utils import timezone

from clearance.hm import PermanentError, TransientError
from clearance.models import Clearance, ClearanceStatus, Credential
from clearance.services import (
    connection_check,
    credentials,
    defleet,
    onboarding,
    sync,
    vehicle_tokens,
    webhooks,
)
from clearance.work import HM_TASK, BackgroundTask

logger = logging.getLogger(__name__)

REQUEST_SOFT_LIMIT = 240


@shared_task(**HM_TASK, soft_time_limit=REQUEST_SOFT_LIMIT, time_limit=REQUEST_SOFT_LIMIT + 30)
def request_clearances(self: BackgroundTask, credential_id: int) -> None:
    """Send the credential's queued clearances in batches; continues itself when time runs out."""
    if not Credential.objects.filter(pk=credential_id).exists():
        return
    deadline = time.monotonic() + REQUEST_SOFT_LIMIT - 60
    try:
        summary = onboarding.request_clearances(credential_id, deadline=deadline)
    except OperationalError as exc:
        self.retry_busy_database(exc)
    except TransientError as exc:
        if not self.retry_transient(exc):
            Clearance.objects.filter(
                credential_id=credential_id, status=ClearanceStatus.QUEUED
            ).update(last_error=f"{exc.message} The request will be sent again at the next sync.")
        return
    if summary.more:
        request_clearances.delay_on_commit(credential_id)


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
    """Beat: one sync task per credential that has clearances to follow; re-apply webhooks whose
    task was lost."""
    credential_ids = (
        Clearance.objects.exclude(credential__isnull=True)
        .values_list("credential_id", flat=True)
        .distinct()
    )
    for credential_id in credential_ids:
        sync_credential.delay_on_commit(credential_id)
    for delivery_pk in webhooks.unprocessed_webhooks():
        process_webhook.delay_on_commit(delivery_pk)


@shared_task(
    base=BackgroundTask,
    bind=True,
    ignore_result=True,
    acks_late=True,
    soft_time_limit=30,
    time_limit=60,
)
def process_webhook(self: BackgroundTask, delivery_pk: int) -> None:
    """Apply this delivery (if nobody has yet), then help drain the rest of a burst."""
    try:
        webhooks.process_webhook(delivery_pk)
        if connection.features.has_select_for_update_skip_locked:
            webhooks.process_pending_webhooks(limit=200)
    except OperationalError as exc:  # SQLite "database is locked" under concurrent writers
        self.retry_busy_database(exc)


@shared_task(**HM_TASK, soft_time_limit=240, time_limit=270)
def defleet_vehicles(
    self: BackgroundTask, vehicle_ids: list[int], actor_id: int | None = None
) -> None:
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    outcomes = defleet.defleet(vehicle_ids, actor=actor)
    again = [o.vehicle_id for o in outcomes if o.transient]
    if again and not self.retry_later(args=(again, actor_id)):
        logger.error("Defleet gave up for %s vehicles", len(again))


@shared_task(**HM_TASK, soft_time_limit=120, time_limit=150)
def issue_vehicle_tokens(self: BackgroundTask, clearance_ids: list[int]) -> None:
    try:
        vehicle_tokens.issue_vehicle_tokens(clearance_ids)
    except TransientError as exc:
        self.retry_transient(exc)


@shared_task(**HM_TASK, soft_time_limit=60, time_limit=90)
def refresh_vehicle_token(self: BackgroundTask, token_pk: int) -> None:
    try:
        vehicle_tokens.refresh_vehicle_token(token_pk)
    except TransientError as exc:
        self.retry_transient(exc)


@shared_task(base=BackgroundTask, bind=True, ignore_result=True, soft_time_limit=30, time_limit=60)
def refresh_vehicle_tokens(self: BackgroundTask) -> None:
    """Beat: refresh every legacy vehicle token that expires soon (one task each)."""
    for token_pk in vehicle_tokens.expiring_vehicle_tokens():
        refresh_vehicle_token.delay_on_commit(token_pk)


@shared_task(**HM_TASK, soft_time_limit=120, time_limit=150)
def revoke_vehicle_tokens(self: BackgroundTask, clearance_ids: list[int]) -> None:
    vehicle_tokens.revoke_tokens_of(clearance_ids)


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
