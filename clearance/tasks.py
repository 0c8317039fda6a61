"""Thin Celery tasks of the clearance lifecycle: ids in, re-load, call a service.

Transient HM errors (timeouts, 5xx, 429) are retried with exponential backoff and jitter; HM's
"retry after N s" is honoured when longer. Permanent errors are written on the clearance by the
services. Every task has a soft and a hard time limit.
"""

from __future__ import annotations

import logging
import random
import time

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import OperationalError, connection
from django.utils import timezone

from clearance import services
from clearance.hm import PermanentError, RateLimited, TransientError
from clearance.models import Clearance, Credential, VehicleToken

logger = logging.getLogger(__name__)

HM_CALL = {"bind": True, "ignore_result": True, "acks_late": True}


def retry_countdown(retries: int, exc: Exception | None = None) -> float:
    """Exponential backoff with full jitter, never shorter than HM's retry-after."""
    base = settings.HM_RETRY_BACKOFF_SECONDS
    cap = settings.HM_RETRY_BACKOFF_MAX_SECONDS
    delay = random.uniform(base / 2, min(cap, base * (2**retries)))
    if isinstance(exc, RateLimited) and exc.retry_after:
        delay = max(delay, exc.retry_after + random.uniform(0, base))
    return delay


def retry_transient(task, exc: TransientError):
    """Raise Celery's Retry for a transient error, or give up after HM_MAX_RETRIES (logged)."""
    if task.request.retries >= settings.HM_MAX_RETRIES:
        logger.error("%s gave up after %s retries: %s", task.name, task.request.retries, exc)
        return None
    countdown = retry_countdown(task.request.retries, exc)
    logger.info("%s: %s; retrying in %.1fs", task.name, exc.message, countdown)
    raise task.retry(exc=exc, countdown=countdown, max_retries=settings.HM_MAX_RETRIES)


def retry_busy_database(task, exc: Exception):
    """A busy database (SQLite's single writer, a PostgreSQL deadlock victim): retry soon."""
    if task.request.retries >= 20:
        raise exc
    raise task.retry(exc=exc, countdown=random.uniform(0.1, 1.0), max_retries=20)


# --- onboarding ------------------------------------------------------------------------------------

REQUEST_SOFT_LIMIT = 240


@shared_task(**HM_CALL, soft_time_limit=REQUEST_SOFT_LIMIT, time_limit=REQUEST_SOFT_LIMIT + 30)
def request_clearances(self, credential_id: int) -> None:
    """Send the credential's queued clearances in batches; continues itself when time runs out."""
    if not Credential.objects.filter(pk=credential_id).exists():
        return
    deadline = time.monotonic() + REQUEST_SOFT_LIMIT - 60
    try:
        summary = services.request_clearances(credential_id, deadline=deadline)
    except OperationalError as exc:
        retry_busy_database(self, exc)
        return
    except TransientError as exc:
        if retry_transient(self, exc) is None:
            Clearance.objects.filter(credential_id=credential_id, status="queued").update(
                last_error=f"{exc.message} The request will be sent again at the next sync."
            )
        return
    if summary.more:
        request_clearances.delay(credential_id)


# --- sync ------------------------------------------------------------------------------------------


@shared_task(**HM_CALL, soft_time_limit=240, time_limit=270)
def sync_credential(self, credential_id: int) -> None:
    credential = Credential.objects.filter(pk=credential_id).first()
    if credential is None:
        return
    try:
        services.sync_clearances(credential)
    except OperationalError as exc:
        retry_busy_database(self, exc)
    except TransientError as exc:
        retry_transient(self, exc)
    except (PermanentError, ValueError) as exc:
        # Refused for good (wrong secret, no fleet access) or incomplete: nothing to retry until
        # an owner fixes the credential; "Test connection" explains it in words.
        logger.warning("Sync of credential %s failed: %s", credential_id, exc)
        cache.set(
            f"clearance:last-sync:{credential_id}",
            {"at": timezone.now().isoformat(), "error": str(exc)},
            timeout=None,
        )


@shared_task(bind=True, ignore_result=True, soft_time_limit=60, time_limit=90)
def sync_all_clearances(self) -> None:
    """Beat: one sync task per credential that has clearances to follow; re-apply webhooks whose
    task was lost."""
    credential_ids = (
        Clearance.objects.exclude(credential__isnull=True)
        .values_list("credential_id", flat=True)
        .distinct()
    )
    for credential_id in credential_ids:
        sync_credential.delay(credential_id)
    for delivery_pk in services.unprocessed_webhooks():
        process_webhook.delay(delivery_pk)


# --- webhooks --------------------------------------------------------------------------------------


@shared_task(bind=True, ignore_result=True, acks_late=True, soft_time_limit=30, time_limit=60)
def process_webhook(self, delivery_pk: int) -> None:
    """Apply this delivery (if nobody has yet), then help drain the rest of a burst."""
    try:
        services.process_webhook(delivery_pk)
        if connection.features.has_select_for_update_skip_locked:
            services.process_pending_webhooks(limit=200)
    except OperationalError as exc:  # SQLite "database is locked" under concurrent writers
        retry_busy_database(self, exc)


# --- defleet ---------------------------------------------------------------------------------------


@shared_task(**HM_CALL, soft_time_limit=240, time_limit=270)
def defleet_vehicles(self, vehicle_ids: list[int], actor_id: int | None = None) -> None:
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    outcomes = services.defleet(vehicle_ids, actor=actor)
    again = [o.vehicle_id for o in outcomes if o.transient]
    if again:
        if self.request.retries >= settings.HM_MAX_RETRIES:
            logger.error("Defleet gave up for %s vehicles", len(again))
            return
        self.retry(
            args=(again, actor_id),
            countdown=retry_countdown(self.request.retries),
            max_retries=settings.HM_MAX_RETRIES,
        )


# --- legacy vehicle tokens -------------------------------------------------------------------------


@shared_task(**HM_CALL, soft_time_limit=120, time_limit=150)
def issue_vehicle_tokens(self, clearance_ids: list[int]) -> None:
    try:
        services.issue_vehicle_tokens(clearance_ids)
    except TransientError as exc:
        retry_transient(self, exc)


@shared_task(**HM_CALL, soft_time_limit=60, time_limit=90)
def refresh_vehicle_token(self, token_pk: int) -> None:
    try:
        services.refresh_vehicle_token(token_pk)
    except TransientError as exc:
        retry_transient(self, exc)


@shared_task(bind=True, ignore_result=True, soft_time_limit=30, time_limit=60)
def refresh_vehicle_tokens(self) -> None:
    """Beat: refresh every legacy vehicle token that expires soon (one task each)."""
    for token_pk in services.expiring_vehicle_tokens():
        refresh_vehicle_token.delay(token_pk)


@shared_task(**HM_CALL, soft_time_limit=120, time_limit=150)
def revoke_vehicle_tokens(self, clearance_ids: list[int]) -> None:
    clients: dict[int, object] = {}
    rows = Clearance.objects.select_related("credential").filter(
        pk__in=clearance_ids, vehicle_token__isnull=False
    )
    for clearance in rows:
        try:
            client = clients.get(clearance.credential_id) or services.hm_client(
                clearance.credential
            )
        except ValueError:
            VehicleToken.objects.filter(clearance=clearance).delete()
            continue
        clients[clearance.credential_id] = client
        services.revoke_vehicle_tokens(clearance, client)
