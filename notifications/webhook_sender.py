"""Sending outgoing webhook deliveries: sign, POST through the HTTP seam, record, retry.

Any 2xx answer delivers. Anything else is retried with backoff (``delivery.retry``) for
``DELIVERY_RETRY_HOURS`` after the delivery was made, then given up; an address FleetPortal
refuses (``http.RefusedError``) fails at once. An endpoint whose attempts have failed for that
long without one success is disabled, its pending deliveries fail, and its organization's owners
get an email (in the same transaction).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from durable import work
from durable.models import ACTIVE_STATES
from notifications import delivery, http, signing, tasks
from notifications.models import DeliveryStatus, EventDelivery, OutgoingEmail, WebhookEndpoint
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
            headers_for(event, row.endpoint, row.attempts),  # the claim counted this one
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


def work_of(endpoint_id: int | None = None) -> QuerySet[EventDelivery]:
    """The deliveries a sender woken for ``endpoint_id`` (None: any endpoint) looks at."""
    rows = EventDelivery.objects.all()
    return rows if endpoint_id is None else rows.filter(endpoint_id=endpoint_id)


def deliver(claimed: QuerySet[EventDelivery]) -> str:
    """Attempt one claimed delivery; returns its status afterwards."""
    row = claimed.select_related("endpoint", "event").first()
    if row is None:
        return "gone"
    if not row.endpoint.enabled:
        work.give_up(EventDelivery, [row], "The endpoint is disabled.")
        return DeliveryStatus.FAILED
    return record(row, attempt(row))


def record(row: EventDelivery, outcome: Outcome) -> str:
    now = timezone.now()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=row.endpoint_id)
        EventDelivery.objects.filter(pk=row.pk).update(
            last_attempt_at=now,
            last_status_code=outcome.status,
            last_duration_ms=outcome.elapsed_ms,
            last_response=outcome.answer,
            delivered_at=now if outcome.delivered else None,
        )
        if outcome.delivered:
            work.complete(EventDelivery, [row])
            endpoint.failing_since = None
            endpoint.last_success_at = now
        else:
            endpoint.failing_since = endpoint.failing_since or now
            if outcome.refused:
                work.give_up(EventDelivery, [row], outcome.error)
            else:
                delivery.retry(EventDelivery, row, outcome.error, now)
        endpoint.save(update_fields=["failing_since", "last_success_at"])
        failing_since = endpoint.failing_since
        if (
            not outcome.delivered
            and endpoint.enabled
            and failing_since is not None
            and delivery.gives_up(failing_since, now)
        ):
            disable(endpoint, now)
        row.refresh_from_db()
    return row.status


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
    work.give_up(
        EventDelivery,
        EventDelivery.objects.filter(endpoint=endpoint, state__in=ACTIVE_STATES),
        "The endpoint was disabled.",
    )
    owners = Membership.objects.filter(
        organization_id=endpoint.organization_id, role=Role.OWNER, user__is_active=True
    ).exclude(user__email="")
    emails = OutgoingEmail.objects.bulk_create(
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
    tasks.wake_emails(emails)
    logger.warning(
        "Webhook endpoint %s disabled after failing since %s", endpoint.pk, endpoint.failing_since
    )


def send_due(
    endpoint_id: int | None = None, *, budget_seconds: float, stop=work.stopping
) -> tuple[int, bool]:
    """Deliver due rows (of one endpoint, or any) one by one until none is due, the budget is
    spent or the worker is asked to stop. Returns (attempts made, whether rows may still be due)."""
    return delivery.send_due(
        work_of(endpoint_id), deliver, budget_seconds=budget_seconds, stop=stop
    )
