"""The simulated HM's webhooks: a delivery per status change (and pings), signed like HM's and
POSTed by a task; time-driven changes are found by the ``tick`` task."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial

import requests
from django.db import transaction
from django.utils import timezone

from . import clock, tasks
from .auth import hmac_sha1, hmac_sha256
from .behaviour import Entry, next_change_at, timeline
from .models import SimClearance, SimulatedApp, SimWebhookDelivery

logger = logging.getLogger("simulator")

WEBHOOK_USER_AGENT = "HM-Webhook/1.2.0"


def _queue_delivery(
    app: SimulatedApp, event: str, vin: str, payload: dict
) -> SimWebhookDelivery | None:
    if not app.webhook_url:
        return None
    delivery = SimWebhookDelivery.objects.create(
        app=app, event=event, vin=vin, body=json.dumps(payload, separators=(",", ":"))
    )
    transaction.on_commit(partial(_enqueue, delivery.pk))
    return delivery


def _enqueue(delivery_pk: int) -> None:
    try:
        tasks.deliver_webhook.delay(delivery_pk)
    except Exception:  # the broker being down must not break the simulated API
        logger.exception("simulator: could not queue webhook delivery %s", delivery_pk)


def send_ping(app: SimulatedApp) -> SimWebhookDelivery | None:
    return _queue_delivery(
        app, "ping", "", {"event": {"type": "ping"}, "application_id": str(app.app_id)}
    )


def _clearance_payload(clearance: SimClearance, entry: Entry) -> dict:
    """What HM sends (PROTOCOL.md §5): the VIN, the new status in ``action`` and any ``detail``.
    Nothing more -- in particular no time of the change: a receiver must not rely on one."""
    event = {"action": entry.status}
    if entry.reason:
        event["detail"] = entry.reason
    return {"vehicle": {"vin": clearance.vin}, "event": event}


def sync_notifications(clearance: SimClearance, now: datetime) -> list[SimWebhookDelivery]:
    """Queue a webhook for every status change since the last one notified. Call in a transaction."""
    facts = clearance.facts()
    entries = timeline(facts, now)
    statuses = [entry.status for entry in entries]
    new: list[Entry] = []
    if clearance.notified_status != statuses[-1]:
        start = 0
        if clearance.notified_status in statuses:
            start = len(statuses) - statuses[::-1].index(clearance.notified_status)
        new = entries[start:]
    deliveries = []
    for entry in new:
        delivery = _queue_delivery(
            clearance.app,
            "fleet_clearance_changed",
            clearance.vin,
            _clearance_payload(clearance, entry),
        )
        if delivery:
            deliveries.append(delivery)
    settled = next_change_at(facts, now) is None
    if new or settled != clearance.settled:
        clearance.notified_status = statuses[-1]
        clearance.settled = settled
        clearance.save(update_fields=["notified_status", "settled"])
    return deliveries


def detect_changes(now: datetime | None = None, *, limit: int = 1000) -> int:
    """Find clearances whose status moved on by itself and queue their webhooks."""
    now = now or clock.now()
    queued = 0
    with transaction.atomic():
        rows = (
            SimClearance.objects.select_for_update(skip_locked=True)
            .select_related("app")
            .filter(settled=False)
            .order_by("pk")[:limit]
        )
        for clearance in rows:
            queued += len(sync_notifications(clearance, now))
    return queued


def sign(secret: str, body: bytes) -> tuple[str, str]:
    return f"sha256={hmac_sha256(secret, body)}", f"sha1={hmac_sha1(secret, body)}"


def deliver(
    delivery_pk: int, *, final_attempt: bool = True, timeout: tuple[float, float] = (3, 10)
) -> bool:
    """POST one delivery to the app's webhook URL, signed. True when the receiver answered 2xx."""
    delivery = SimWebhookDelivery.objects.select_related("app").filter(pk=delivery_pk).first()
    if delivery is None or delivery.status == SimWebhookDelivery.Status.DELIVERED:
        return True
    app = delivery.app
    body = delivery.body.encode()
    signature_256, signature_1 = sign(app.webhook_secret, body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": WEBHOOK_USER_AGENT,
        "X-HM-Delivery": str(delivery.delivery_id),
        "X-HM-Event": delivery.event,
        "X-HM-Signature-256": signature_256,
        "X-HM-Signature": signature_1,
    }
    delivery.attempts += 1
    ok = False
    try:
        if not app.webhook_url:
            raise requests.RequestException("no webhook URL configured")
        response = requests.post(
            app.webhook_url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
        delivery.last_status_code = response.status_code
        delivery.last_error = "" if response.ok else f"HTTP {response.status_code}"
        ok = 200 <= response.status_code < 300
    except requests.RequestException as exc:
        delivery.last_error = f"{type(exc).__name__}"[:300]
    if ok:
        delivery.status = SimWebhookDelivery.Status.DELIVERED
        delivery.delivered_at = clock.now()
    elif final_attempt:
        delivery.status = SimWebhookDelivery.Status.FAILED
    delivery.save(
        update_fields=["attempts", "last_status_code", "last_error", "status", "delivered_at"]
    )
    return ok


def redeliver_waiting(*, older_than_seconds: float = 30, limit: int = 500) -> int:
    """Queue again the pending deliveries older than ``older_than_seconds``: their message was
    lost (the broker was down when they were stored, or a worker died with it). A repeat is
    harmless: the receiver stores each X-HM-Delivery id once. Returns how many were queued."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    pks = list(
        SimWebhookDelivery.objects.filter(
            status=SimWebhookDelivery.Status.PENDING, created_at__lt=cutoff
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in pks:
        _enqueue(pk)
    return len(pks)


def pending_deliveries(app: SimulatedApp | None = None) -> Iterable[SimWebhookDelivery]:
    qs = SimWebhookDelivery.objects.filter(status=SimWebhookDelivery.Status.PENDING)
    return qs.filter(app=app) if app else qs
