"""HM webhooks are hints; HM is the truth.

A verified delivery is stored in one statement and a confirmation is scheduled: one throttled
task per credential (at once after a quiet spell, then at most one start per
``WEBHOOK_CONFIRM_DELAY_SECONDS``) claims every unconfirmed
delivery of that credential, asks HM once for the VINs they name (``GET /v1/fleets/vehicles``
with a filter) and moves each clearance to what HM answers, through the same code as a sync.
A webhook never moves a clearance by itself: a replayed, reordered or forged-but-signed body
changes nothing HM does not confirm. The webhook's ``detail`` is kept as the words of the
change it announced. Deliveries are durable work (``durable/__init__.py``): a lost task message
is replaced by the reconciler, a failed HM call retried per delivery; confirmed deliveries are
deleted ``WEBHOOK_DELIVERY_RETENTION_DAYS`` after receipt.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import Field, QuerySet
from django.urls import reverse
from django.utils import timezone

from clearance import state, tasks
from clearance.clients import hm_client_for
from clearance.hm import HMClient, PermanentError, TransientError
from clearance.models import Clearance, Credential, WebhookDelivery
from clearance.services import sync
from clearance.services.common import words
from clearance.webhook_credentials import WebhookCredential
from durable import work
from durable.models import WorkState

logger = logging.getLogger(__name__)

CLEARANCE_CHANGED = "fleet_clearance_changed"
# Deliveries confirmed by one task (one HM list call).
CONFIRM_BATCH = 2000
# Up to this many VINs HM is asked about by name (a filter); more: the whole list, still once.
FILTER_MAX_VINS = 100


def webhook_url_for(credential: Credential) -> str:
    """Where HM must send this credential's webhooks (set it in the HM console)."""
    path = reverse("clearance:webhook_high_mobility", args=[credential.public_id])
    return f"{settings.SITE_URL}{path}"


def delivery_id_for(header: str | None) -> str:
    """HM's X-HM-Delivery id; without one, a fresh id: a body seen before may be real news
    (approved, revoked, approved again), so bodies are never deduplicated by their hash."""
    header = (header or "").strip()
    if header:
        return header[:200]
    return f"local:{uuid.uuid4().hex}"


def record_webhook(
    credential: Credential | WebhookCredential,
    payload: dict[str, Any],
    *,
    delivery_id: str,
    event: str,
) -> bool:
    """Store one verified delivery (one INSERT; at most once per delivery id) and schedule the
    credential's confirmation. Returns whether it was stored (False: a repeated id). Any other
    refusal of the INSERT (the credential deleted meanwhile) raises ``IntegrityError``."""
    is_ping = event == "ping"
    now = timezone.now()
    # Outside a transaction (the receiver) the INSERT commits by itself: one round trip, not
    # BEGIN + INSERT + COMMIT. Inside one, a savepoint keeps a repeated id from breaking it.
    savepoint = transaction.atomic() if connection.in_atomic_block else nullcontext()
    try:
        with savepoint:
            _insert_delivery(
                {
                    "credential_id": credential.pk,
                    "delivery_id": delivery_id,
                    "event": event[:100],
                    "payload": payload,
                    "state": WorkState.DONE if is_ping else WorkState.PENDING,
                    "processed_at": now if is_ping else None,
                    "result": "ping" if is_ping else "",
                },
                now,
            )
    except IntegrityError:
        # Only now, on the rare refusal, a second query: a repeat, or something else?
        if WebhookDelivery.objects.filter(delivery_id=delivery_id).exists():
            return False
        raise
    if not is_ping:
        schedule_confirmation(credential.public_id, credential.pk)
    return True


@functools.cache
def _delivery_columns() -> tuple[list[Field[Any, Any]], str]:
    fields = [f for f in WebhookDelivery._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    # Only the model's own names, quoted; every value is a parameter.
    sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
        quote(WebhookDelivery._meta.db_table),
        ", ".join(quote(str(f.column)) for f in fields),
        ", ".join(["%s"] * len(fields)),
    )
    return fields, sql


def _insert_delivery(values: dict[str, Any], now: datetime) -> None:
    """The INSERT ``WebhookDelivery.objects.create(**values)`` makes (every column: the values
    given, the model's defaults, ``now`` for its ``auto_now`` times), without a model instance
    and a query compiled per webhook, which were half of the receiver's CPU. No signals: nothing
    listens to deliveries."""
    fields, sql = _delivery_columns()
    db = connections[DEFAULT_DB_ALIAS]  # once: each use of the connection proxy costs a lookup
    row = []
    for f in fields:
        if f.attname in values:
            value = values[f.attname]
        elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            value = now
        else:
            value = f.get_default()
        row.append(f.get_db_prep_save(value, connection=db))
    with db.cursor() as cursor:
        cursor.execute(sql, row)


# Confirmations known to be scheduled by this process: credential public id -> debounce window.
_scheduled: dict[uuid.UUID, int] = {}
# The confirmation of a window runs this long after the window ends (clocks of the web and the
# worker machines may differ a little).
WINDOW_GRACE_SECONDS = 0.25


def _clock() -> float:
    return time.time()


def schedule_confirmation(public_id: uuid.UUID, credential_id: int) -> None:
    """Wake the credential's confirmation once per debounce window: a burst of webhooks becomes
    one task and one HM call per window. Windows are ``WEBHOOK_CONFIRM_DELAY_SECONDS`` of the
    wall clock; the first delivery of a window adds the window's marker to the cache and
    schedules the confirmation for just after the window ends, so it finds every delivery
    stored during the window. When the window before had no marker (a quiet spell), that first
    delivery is also confirmed at once: a lone webhook shows on the page without waiting out a
    window. A process that has seen its window scheduled (by itself or another: the marker
    existed) asks the cache no more until the next window. The markers are only a debounce:
    when the cache or the broker is down the delivery is stored anyway and the reconciler
    wakes it."""
    delay = settings.WEBHOOK_CONFIRM_DELAY_SECONDS
    now = _clock()
    window = int(now // delay)
    if _scheduled.get(public_id) == window:
        return
    quiet = False
    try:
        first = cache.add(_window_key(public_id, window), 1, timeout=2 * delay)
        quiet = first and cache.get(_window_key(public_id, window - 1)) is None
    except Exception:  # the cache is down: wake anyway (duplicates find nothing due)
        logger.warning("Webhook debounce unavailable; waking the confirmation directly")
        first = True
    _scheduled[public_id] = window
    if quiet:
        tasks.confirm_webhooks.apply_async_on_commit((credential_id,), countdown=0)
    if first:
        countdown = (window + 1) * delay - now + WINDOW_GRACE_SECONDS
        tasks.confirm_webhooks.apply_async_on_commit((credential_id,), countdown=countdown)


def _window_key(public_id: uuid.UUID, window: int) -> str:
    return f"clearance:webhook-confirm:{public_id}:{window}"


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
            return CLEARANCE_CHANGED
    return "unknown"


def unconfirmed(credential_id: int) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(credential_id=credential_id)


@dataclass
class ConfirmSummary:
    deliveries: int = 0
    vins: int = 0
    hm_calls: int = 0
    sync: sync.SyncSummary = field(default_factory=sync.SyncSummary)
    retrying: int = 0
    more: bool = False


def _hint(delivery: WebhookDelivery) -> tuple[str, str, str] | None:
    """(vin, announced status, detail) of a clearance webhook; None when it names none."""
    if delivery.event != CLEARANCE_CHANGED:
        return None
    payload = delivery.payload if isinstance(delivery.payload, dict) else {}
    vehicle = _object(payload.get("vehicle"))
    event = _object(payload.get("event"))
    vin = str(vehicle.get("vin") or "").strip().upper()
    action = state.normalise(event.get("action"))
    if not vin or not action:
        return None
    detail = event.get("detail")
    return vin, action, str(detail) if detail else ""


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def confirm_webhooks(credential_id: int, *, client: HMClient | None = None) -> ConfirmSummary:
    """Confirm a batch of the credential's due deliveries with ONE HM list call; each named
    clearance moves to what HM answers (its changelog through the state machine)."""
    summary = ConfirmSummary()
    claimed = list(
        work.claim(
            unconfirmed(credential_id),
            limit=CONFIRM_BATCH,
            lease_seconds=confirm_lease_seconds(),
        ).order_by("received_at", "pk")
    )
    if not claimed:
        return summary
    summary.deliveries = len(claimed)
    now = timezone.now()
    hints: dict[str, tuple[str, str]] = {}
    vin_of: dict[int, str] = {}
    for delivery in claimed:
        hint = _hint(delivery)
        if hint is None:
            delivery.result = (
                f"ignored event {delivery.event!r}"
                if delivery.event != CLEARANCE_CHANGED
                else "ignored: no vin or action"
            )
            continue
        vin, action, detail = hint
        hints[vin] = (action, detail)  # the latest received wins the words
        vin_of[delivery.pk] = vin
    rows = {
        row.vehicle.vin.upper(): row
        for row in Clearance.objects.filter(
            credential_id=credential_id, vehicle__vin__in=list(hints)
        )
        .select_related("vehicle")
        .only(*sync.SYNC_ONLY)
    }
    summary.vins = len(rows)
    listed_by_vin = {}
    if rows:
        try:
            listed_by_vin = _ask_hm(credential_id, sorted(rows), client, summary)
        except TransientError as exc:
            waiting = [d for d in claimed if vin_of.get(d.pk) in rows]
            summary.retrying = len(waiting)
            work.retry(
                WebhookDelivery, waiting, words(exc), retry_after=getattr(exc, "retry_after", None)
            )
            claimed = [d for d in claimed if d not in waiting]
        except (PermanentError, ValueError) as exc:
            message = f"Not confirmed with High Mobility: {words(exc)}"
            failed = [d for d in claimed if vin_of.get(d.pk) in rows]
            work.give_up(WebhookDelivery, failed, message)
            claimed = [d for d in claimed if d not in failed]
        else:
            credential = Credential.objects.get(pk=credential_id)
            candidates = [
                row.pk
                for vin, row in rows.items()
                if vin in listed_by_vin and sync.might_change(row, listed_by_vin[vin])
            ]
            sync.apply_listed(credential, candidates, listed_by_vin, now, summary.sync, hints=hints)
    done_at = timezone.now()  # the clearances' changes are committed
    for delivery in claimed:
        named = vin_of.get(delivery.pk)
        if named is not None:
            vin = named
            if vin not in rows:
                delivery.result = f"ignored: {vin} is not onboarded with this credential"
            elif vin in listed_by_vin:
                said = state.normalise(listed_by_vin[vin].status)
                delivery.result = f"{vin}: confirmed, High Mobility says {said}"
            else:
                delivery.result = f"{vin}: High Mobility does not list this vehicle"
        delivery.result = delivery.result[:500]
        delivery.state = WorkState.DONE
        delivery.processed_at = done_at
        delivery.claim = ""
    WebhookDelivery.objects.bulk_update(
        claimed, ["result", "state", "processed_at", "claim"], batch_size=500
    )
    summary.more = work.due(unconfirmed(credential_id)).exists()
    return summary


def confirm_lease_seconds() -> float:
    """How long a confirmation holds the deliveries it claimed: two HM calls' timeouts and a
    minute to apply; after that another worker may take them."""
    return 2 * (settings.HM_CONNECT_TIMEOUT + settings.HM_READ_TIMEOUT) + 60


def _ask_hm(
    credential_id: int, vins: list[str], client: HMClient | None, summary: ConfirmSummary
) -> dict[str, Any]:
    credential = Credential.objects.get(pk=credential_id)
    client = client or hm_client_for(credential)
    summary.hm_calls += 1
    if len(vins) <= FILTER_MAX_VINS:
        listed = client.list_clearances({"vin": {"operator": "in", "value": vins}})
    else:
        listed = client.list_clearances()
    wanted = set(vins)
    return {v.vin.upper(): v for v in listed if v.vin.upper() in wanted}


def prune_deliveries(*, batch: int = 5000) -> int:
    """Delete finished deliveries older than ``WEBHOOK_DELIVERY_RETENTION_DAYS`` (in batches);
    returns how many. Unfinished ones stay whatever their age."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS)
    deleted = 0
    while True:
        pks = list(
            WebhookDelivery.objects.filter(
                received_at__lt=cutoff, state__in=[WorkState.DONE, WorkState.FAILED]
            ).values_list("pk", flat=True)[:batch]
        )
        if not pks:
            return deleted
        deleted += WebhookDelivery.objects.filter(pk__in=pks).delete()[0]
