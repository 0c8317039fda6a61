"""Sending outgoing webhook deliveries: sign, POST through the HTTP seam, record, retry.

Any 2xx answer delivers. Anything else is retried with backoff (``delivery.retry_delay``) for
``DELIVERY_RETRY_HOURS`` after the delivery was made, then marked failed; an address FleetPortal
refuses (``http.RefusedError``) fails at once. An endpoint whose attempts have failed for that
long without one success is disabled, its pending deliveries fail, and its organization's owners
get an email (in the same transaction).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from notifications import delivery, http, signing, tasks
from notifications.models import DeliveryState, EventDelivery, OutgoingEmail, WebhookEndpoint
from organizations.models import Membership, Role

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    delivered: bool
    status: int | None = None
    error: str = ""
    answer: str = ""
    elapsed_ms: int | None = None
    refused: bool = False


def headers_for(event, endpoint: WebhookEndpoint, attempt: int) -> dict[str, str]:
    body = event.body.encode()
    return {
        "Content-Type": "application/json",
        signing.HEADER: signing.header_value(endpoint.secret, body),
        "FleetPortal-Event-Id": str(event.public_id),
        "FleetPortal-Event-Type": event.type,
        "FleetPortal-Delivery-Attempt": str(attempt),
    }


def attempt(row: EventDelivery) -> Outcome:
    event = row.event
    try:
        answer = http.post(
            row.endpoint.url,
            event.body.encode(),
            headers_for(event, row.endpoint, row.attempts + 1),
        )
    except http.RefusedError as exc:
        return Outcome(False, error=exc.message, refused=True)
    except http.TransientError as exc:
        return Outcome(False, error=exc.message)
    if answer.ok:
        return Outcome(True, answer.status, answer=answer.text, elapsed_ms=answer.elapsed_ms)
    error = f"The receiver answered HTTP {answer.status}."
    if 300 <= answer.status < 400:
        error = f"The receiver answered HTTP {answer.status}, a redirect: FleetPortal never follows one."
    return Outcome(
        False,
        answer.status,
        error=error,
        answer=answer.text,
        elapsed_ms=answer.elapsed_ms,
    )


def deliver(pk: int) -> str:
    """Attempt one claimed delivery; returns its state afterwards."""
    row = EventDelivery.objects.select_related("endpoint", "event").filter(pk=pk).first()
    if row is None or row.state != DeliveryState.PENDING:
        return "gone"
    if not row.endpoint.enabled:
        EventDelivery.objects.filter(pk=pk, state=DeliveryState.PENDING).update(
            state=DeliveryState.FAILED, last_error="The endpoint is disabled."
        )
        return DeliveryState.FAILED
    outcome = attempt(row)
    return record(pk, outcome)


def record(pk: int, outcome: Outcome) -> str:
    now = timezone.now()
    retry_in = None
    with transaction.atomic():
        row = EventDelivery.objects.select_for_update().select_related("endpoint").get(pk=pk)
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=row.endpoint_id)
        row.attempts += 1
        row.last_attempt_at = now
        row.last_status_code = outcome.status
        row.last_duration_ms = outcome.elapsed_ms
        row.last_response = outcome.answer
        row.last_error = outcome.error
        if outcome.delivered:
            row.state = DeliveryState.DELIVERED
            row.delivered_at = now
            endpoint.failing_since = None
            endpoint.last_success_at = now
        else:
            endpoint.failing_since = endpoint.failing_since or now
            if outcome.refused or delivery.gives_up(row.created_at, now):
                row.state = DeliveryState.FAILED
            else:
                retry_in = delivery.retry_delay(row.attempts)
                row.next_attempt_at = now + timedelta(seconds=retry_in)
        row.save()
        endpoint.save(update_fields=["failing_since", "last_success_at"])
        failing_since = endpoint.failing_since
        if (
            not outcome.delivered
            and endpoint.enabled
            and failing_since is not None
            and delivery.gives_up(failing_since, now)
        ):
            disable(endpoint, now)
            retry_in = None
    if retry_in is not None and retry_in <= tasks.HINT_HORIZON_SECONDS:
        # A hint to try at the due time; the reconciler catches it if this message is lost.
        tasks.send_webhooks.apply_async_on_commit(countdown=retry_in)
    return row.state


def disable(endpoint: WebhookEndpoint, now) -> None:
    """Turn a failing endpoint off, fail what it still had to receive, email the owners."""
    hours = delivery.retry_window().total_seconds() / 3600
    endpoint.enabled = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = (
        f"Every delivery failed for {hours:g} hours (since "
        f"{timezone.localtime(endpoint.failing_since):%d %b %Y %H:%M %Z}), so FleetPortal "
        "stopped sending. Fix the receiver, then turn the endpoint on again and redeliver what "
        "it missed."
    )
    endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason"])
    EventDelivery.objects.filter(endpoint=endpoint, state=DeliveryState.PENDING).update(
        state=DeliveryState.FAILED, last_error="The endpoint was disabled."
    )
    owners = Membership.objects.filter(
        organization_id=endpoint.organization_id, role=Role.OWNER, user__is_active=True
    ).exclude(user__email="")
    OutgoingEmail.objects.bulk_create(
        [
            OutgoingEmail(
                organization_id=endpoint.organization_id,
                user_id=user_id,
                kind=OutgoingEmail.Kind.ENDPOINT_DISABLED,
                endpoint=endpoint,
                next_attempt_at=now,
                created_at=now,
            )
            for user_id in owners.values_list("user_id", flat=True)
        ]
    )
    tasks.send_emails.delay_on_commit()
    logger.warning(
        "Webhook endpoint %s disabled after failing since %s", endpoint.pk, endpoint.failing_since
    )


def send_due(*, budget_seconds: float, stop=lambda: False) -> tuple[int, bool]:
    """Deliver due rows one by one until none is due or the budget is spent.

    Returns (attempts made, whether rows may still be due)."""
    deadline = time.monotonic() + budget_seconds
    done = 0
    while time.monotonic() < deadline and not stop():
        pk = delivery.claim_one(EventDelivery)
        if pk is None:
            return done, False
        deliver(pk)
        done += 1
    return done, True
