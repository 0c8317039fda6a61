"""Outgoing webhook events: their types, their versioned JSON bodies and their delivery rows.

``emit`` is called inside the transaction of the change it reports: the event (its id and exact
body) and one ``EventDelivery`` per subscribed, enabled endpoint are written with the change, and
the sender is woken after commit. An organization without endpoints costs one query, no rows.
The body format is documented in docs/notifications.md; ``BODY_VERSION`` changes only when a
field changes meaning or disappears (new fields may appear in any version).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from notifications import tasks
from notifications.models import EventDelivery, OutgoingEvent, WebhookEndpoint
from organizations.models import Organization
from vehicles.models import Vehicle

BODY_VERSION = 1

CLEARANCE_CHANGED = "clearance.changed"
VEHICLE_DEFLEETED = "vehicle.defleeted"
IMPORT_FINISHED = "import.finished"
ALERT_FIRED = "alert.fired"
TEST_EVENT = "webhook.test"

# What an endpoint can subscribe to, in the words of the endpoint form.
EVENT_TYPES: dict[str, str] = {
    CLEARANCE_CHANGED: "A clearance moved to another status (requested, pending, approved, "
    "rejected, revoked...).",
    VEHICLE_DEFLEETED: "High Mobility accepted a defleet: the clearance is being revoked "
    "(approved) or canceled (pending).",
    IMPORT_FINISHED: "A confirmed CSV import ended, with its counts.",
    ALERT_FIRED: "An alert rule fired for a vehicle.",
}


@dataclass(frozen=True)
class Item:
    """One event to emit: its type, its organization and its ``data`` object."""

    organization: Organization
    type: str
    data: Mapping[str, Any]


def iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def vehicle_json(vehicle: Vehicle) -> dict[str, Any]:
    return {
        "id": str(vehicle.public_id),
        "vin": vehicle.vin,
        "brand": vehicle.brand,
        "license_plate": vehicle.license_plate,
        "nickname": vehicle.nickname,
        "tags": vehicle.tags if isinstance(vehicle.tags, dict) else {},
        "url": absolute(reverse("vehicles:detail", args=[vehicle.public_id])),
    }


def organization_json(organization: Organization) -> dict[str, str]:
    return {"id": str(organization.public_id), "slug": organization.slug, "name": organization.name}


def body(event_id: uuid.UUID, item: Item, created_at: datetime) -> str:
    """The exact bytes receivers get (compact JSON, UTF-8), kept as stored for every attempt."""
    envelope = {
        "id": str(event_id),
        "type": item.type,
        "version": BODY_VERSION,
        "created_at": iso(created_at),
        "organization": organization_json(item.organization),
        "data": dict(item.data),
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)


def subscribed_endpoints(
    organization_ids: Iterable[int], event_type: str | None = None
) -> dict[int, list[WebhookEndpoint]]:
    """{organization id: its enabled endpoints (subscribed to ``event_type``)}, one query."""
    found: dict[int, list[WebhookEndpoint]] = {}
    rows = WebhookEndpoint.objects.filter(
        organization_id__in=set(organization_ids), enabled=True
    ).only("pk", "organization_id", "event_types")
    for endpoint in rows:
        if event_type is None or event_type in (endpoint.event_types or []):
            found.setdefault(endpoint.organization_id, []).append(endpoint)
    return found


def emit(items: Iterable[Item], *, endpoints: Mapping[int, list[WebhookEndpoint]] | None = None):
    """Store each item as an event with a delivery per subscribed endpoint; wake the sender.

    ``endpoints``: the enabled endpoints per organization when the caller already has them.
    """
    items = list(items)
    if not items:
        return 0
    if endpoints is None:
        endpoints = subscribed_endpoints({item.organization.pk for item in items})
    now = timezone.now()
    events: list[OutgoingEvent] = []
    receivers: list[list[WebhookEndpoint]] = []
    for item in items:
        wanted = [
            e for e in endpoints.get(item.organization.pk, []) if item.type in (e.event_types or [])
        ]
        if not wanted:
            continue
        event_id = uuid.uuid4()
        events.append(
            OutgoingEvent(
                public_id=event_id,
                organization_id=item.organization.pk,
                type=item.type,
                body=body(event_id, item, now),
                created_at=now,
            )
        )
        receivers.append(wanted)
    if not events:
        return 0
    OutgoingEvent.objects.bulk_create(events, batch_size=1000)
    deliveries = [
        EventDelivery(endpoint=endpoint, event=event, next_attempt_at=now, created_at=now)
        for event, wanted in zip(events, receivers, strict=True)
        for endpoint in wanted
    ]
    EventDelivery.objects.bulk_create(deliveries, batch_size=1000)
    tasks.wake_webhooks(deliveries)
    return len(deliveries)


def test_event(endpoint: WebhookEndpoint, *, by: Any = None) -> EventDelivery:
    """A ``webhook.test`` event for this endpoint only (whatever it subscribed to)."""
    now = timezone.now()
    event_id = uuid.uuid4()
    item = Item(
        endpoint.organization,
        TEST_EVENT,
        {
            "message": "A test event sent from FleetPortal's webhook page.",
            "endpoint": {"id": str(endpoint.public_id), "url": endpoint.url},
            "sent_by": by.get_username() if by is not None else None,
        },
    )
    event = OutgoingEvent.objects.create(
        public_id=event_id,
        organization=endpoint.organization,
        type=TEST_EVENT,
        body=body(event_id, item, now),
        created_at=now,
    )
    delivery = EventDelivery.objects.create(
        endpoint=endpoint, event=event, next_attempt_at=now, created_at=now
    )
    tasks.wake_webhooks([delivery])
    return delivery


def redeliver(delivery: EventDelivery) -> EventDelivery:
    """The same event (same id and body) to the same endpoint again, as a new delivery."""
    now = timezone.now()
    again = EventDelivery.objects.create(
        endpoint=delivery.endpoint, event=delivery.event, next_attempt_at=now, created_at=now
    )
    tasks.wake_webhooks([again])
    return again
