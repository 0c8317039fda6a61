"""HM webhooks: each verified delivery is stored once, then applied exactly once by a task.

HM's webhooks carry no time of the change, so our receive time and the state graph order them;
a delivery refused by the graph (it overtook an earlier one) is replayed once the step before
it is in.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from clearance import state, tasks
from clearance.models import Clearance, Credential, WebhookDelivery
from clearance.services.vehicle_tokens import after_moves
from clearance.state import Change, Decision, Source


def webhook_url_for(credential: Credential) -> str:
    """Where HM must send this credential's webhooks (set it in the HM console)."""
    path = reverse("clearance:webhook_high_mobility", args=[credential.public_id])
    return f"{settings.SITE_URL}{path}"


def delivery_id_for(body: bytes, header: str | None) -> str:
    """HM's X-HM-Delivery id, or (missing header) a digest of the body."""
    header = (header or "").strip()
    if header:
        return header[:200]
    return "sha256:" + hashlib.sha256(body).hexdigest()


def record_webhook(
    credential: Credential,
    body: bytes,
    payload: dict[str, Any],
    *,
    delivery_id: str,
    event: str,
) -> tuple[WebhookDelivery | None, bool]:
    """Store one verified delivery (at most once) and apply it in a task after commit.

    Returns (delivery, created); a repeat of a known delivery id is (None, False).
    """
    is_ping = event == "ping"
    now = timezone.now()
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                credential=credential,
                delivery_id=delivery_id,
                event=event[:100],
                payload=payload,
                processed_at=now if is_ping else None,
                result="ping" if is_ping else "",
            )
            if not is_ping:
                tasks.process_webhook.delay_on_commit(delivery.pk)
    except IntegrityError:
        return None, False
    return delivery, True


def webhook_event(payload: Any, header: str | None) -> str:
    if header:
        return header.strip()
    if isinstance(payload, dict):
        event = payload.get("event")
        if isinstance(event, dict) and event.get("type"):
            return str(event["type"])
        if isinstance(event, str):
            return event
        if isinstance(kind := payload.get("type"), str):
            return kind
        if isinstance(event, dict) and event.get("action"):
            return "fleet_clearance_changed"
    return "unknown"


def process_webhook(delivery_pk: int) -> str:
    """Apply one stored delivery exactly once (row lock + processed_at)."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("credential")
            .filter(pk=delivery_pk)
            .first()
        )
        if delivery is None:
            return "gone"
        if delivery.processed_at is not None:
            return "already processed"
        result = _apply_webhook(delivery)
        delivery.processed_at = timezone.now()
        delivery.result = result[:500]
        delivery.save(update_fields=["processed_at", "result"])
    return result


def process_pending_webhooks(*, limit: int = 200, batch: int = 25) -> int:
    """Apply unprocessed deliveries in the order they were received, claimed with SKIP LOCKED
    a few at a time, so that under a burst one task drains many and the others find nothing
    left (each queued task still guarantees its own delivery is applied). Returns how many."""
    done = 0
    while done < limit:
        with transaction.atomic():
            claimed = list(
                WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("credential")
                .filter(processed_at__isnull=True)
                .order_by("received_at", "pk")[:batch]
            )
            if not claimed:
                break
            now = timezone.now()
            for delivery in claimed:
                result = _apply_webhook(delivery)
                delivery.processed_at = now
                delivery.result = result[:500]
            WebhookDelivery.objects.bulk_update(claimed, ["processed_at", "result"])
            done += len(claimed)
    return done


def _apply_webhook(delivery: WebhookDelivery) -> str:
    if delivery.event != "fleet_clearance_changed":
        return f"ignored event {delivery.event!r}"
    payload = delivery.payload if isinstance(delivery.payload, dict) else {}
    vehicle = _object(payload.get("vehicle"))
    event = _object(payload.get("event"))
    vin = str(vehicle.get("vin") or "").strip().upper()
    action = state.normalise(event.get("action"))
    if not vin or not action:
        return "ignored: no vin or action"
    clearance = (
        Clearance.objects.select_related("credential")
        .filter(credential=delivery.credential, vehicle__vin=vin)
        .first()
    )
    if clearance is None:
        return f"ignored: {vin} is not onboarded with this credential"
    decision, before = _apply_webhook_change(clearance, delivery, event, action)
    if decision.outcome is state.Outcome.APPLIED:
        _replay_refused_webhooks(clearance, delivery, vin)
    return f"{vin}: {decision.outcome.value} {before} -> {action}"


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _apply_webhook_change(
    clearance: Clearance, delivery: WebhookDelivery, event: dict[str, Any], action: str
) -> tuple[Decision, str]:
    detail = event.get("detail")
    before = clearance.status
    decision = state.apply_change(
        clearance,
        Change(
            status=action,
            source=Source.WEBHOOK,
            # HM's webhooks carry no time of the change (PROTOCOL.md §5): our receive time and
            # the graph order them.
            at=None,
            learned_at=delivery.received_at,
            detail=str(detail) if detail else "",
            description=str(detail) if detail else None,
        ),
    )
    if decision.event is not None and clearance.credential is not None:
        after_moves(clearance.credential, [(clearance, before, clearance.status)])
    return decision, before


def _replay_refused_webhooks(clearance: Clearance, delivery: WebhookDelivery, vin: str) -> None:
    """Webhooks received AFTER this one but processed before it were refused by the graph
    (e.g. "revoking" before "approved"); now that the earlier step is in, apply them again."""
    later = WebhookDelivery.objects.filter(
        credential=delivery.credential,
        payload__vehicle__vin=vin,
        received_at__gt=delivery.received_at,
        processed_at__isnull=False,
        result__startswith=f"{vin}: forbidden",
    ).order_by("received_at", "pk")
    for refused in later:
        event = refused.payload.get("event") or {}
        action = state.normalise(event.get("action"))
        decision, before = _apply_webhook_change(clearance, refused, event, action)
        refused.result = f"{vin}: {decision.outcome.value} {before} -> {action} (replayed)"
        refused.save(update_fields=["result"])


def unprocessed_webhooks(older_than_seconds: int = 60) -> list[int]:
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        WebhookDelivery.objects.filter(processed_at__isnull=True, received_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:5000]
    )
