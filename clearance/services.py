"""Clearance lifecycle services: onboard, request, sync, webhooks, defleet, vehicle tokens.

Every status change goes through ``clearance.state`` (one place for the state machine). HM
calls go through ``clearance.connect.hm_client_for``; transient HM errors propagate to the
Celery task that called us (it retries with backoff), permanent ones are written on the
clearance in words a fleet manager understands.

Public API::

    queue_clearance_requests(vehicles=None, *, credential, actor=None, clearance_ids=None)
    reonboard(vehicles, *, actor=None, credential=None)
    request_clearances(credential_id, *, client=None, deadline=None) -> RequestSummary
    sync_clearances(credential, *, client=None) -> SyncSummary
    defleet(vehicles, *, actor=None, clients=None) -> list[DefleetOutcome]
    queue_defleet(vehicles, *, actor=None) -> int
    record_webhook(credential, body, headers) -> (WebhookDelivery, created)
    process_webhook(delivery_pk) -> str
    issue_vehicle_tokens(clearance_ids) / refresh_vehicle_token(token_pk)
    refresh_expiring_vehicle_tokens() / revoke_vehicle_tokens(clearance, client)
    vehicle_access_token(clearance) -> str
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from clearance import state
from clearance.hm import (
    AuthenticationError,
    ClearanceRequest,
    ConflictError,
    ForbiddenError,
    HMClient,
    HMError,
    NotFoundError,
    PermanentError,
    TransientError,
    UnprocessableError,
)
from clearance.models import (
    Clearance,
    ClearanceEvent,
    ClearanceStatus,
    Credential,
    VehicleToken,
    WebhookDelivery,
)
from clearance.state import Change, Source
from vehicles import events as fleet_events
from vehicles.models import Vehicle

if TYPE_CHECKING:
    from celery import Task

logger = logging.getLogger(__name__)

S = ClearanceStatus


def hm_client(credential: Credential) -> HMClient:
    from clearance.connect import hm_client_for

    return hm_client_for(credential)


def _on_commit(task: str | Task, *args: Any, on_error: Callable[[], None] | None = None) -> None:
    """Queue a task after the transaction commits; a broker outage is logged, never raised
    (the sync re-sends stuck queued rows and re-applies unprocessed webhooks).

    `task` is the name of a task in clearance/tasks.py or a task object; `on_error` runs when the
    task could not be queued, so a caller can tell the person who started it."""

    def send() -> None:
        from clearance import tasks

        target = getattr(tasks, task) if isinstance(task, str) else task
        try:
            target.delay(*args)
        except Exception:
            if on_error is None:
                logger.exception("Could not queue %s%r; the next sync will catch up", task, args)
                return
            logger.exception("Could not queue %s%r", getattr(target, "name", task), args)
            on_error()

    transaction.on_commit(send)


def _words(exc: Exception) -> str:
    if isinstance(exc, HMError):
        return exc.message
    return str(exc) or type(exc).__name__


# --- onboarding -----------------------------------------------------------------------------------


@dataclass
class QueueResult:
    queued: int = 0
    skipped: int = 0
    clearance_ids: list[int] = field(default_factory=list)
    skipped_reasons: Counter = field(default_factory=Counter)


def _vehicle_ids(vehicles: Iterable[Vehicle | int] | None) -> list[int]:
    if vehicles is None:
        return []
    if hasattr(vehicles, "values_list"):
        return list(vehicles.values_list("pk", flat=True))  # type: ignore[union-attr]
    return [v if isinstance(v, int) else v.pk for v in vehicles]


def queue_clearance_requests(
    vehicles: Iterable[Vehicle | int] | None = None,
    *,
    credential: Credential,
    actor=None,
    clearance_ids: Iterable[int] | None = None,
) -> QueueResult:
    """Save clearances as ``queued`` (new ones, or re-onboarded finished ones) and send them
    after commit. Vehicles of another organization than the credential's are ignored.

    A clearance that is already queued, pending or approved is left alone (skipped).
    """
    ids = set(_vehicle_ids(vehicles))
    if clearance_ids:
        ids |= set(
            Clearance.objects.filter(pk__in=list(clearance_ids)).values_list(
                "vehicle_id", flat=True
            )
        )
    result = QueueResult()
    if not ids:
        return result
    now = timezone.now()
    with transaction.atomic():
        vehicle_ids = list(
            Vehicle.objects.filter(pk__in=list(ids), organization_id=credential.organization_id)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        result.skipped_reasons["other organization"] = len(ids) - len(vehicle_ids)
        existing = {
            c.vehicle_id: c
            for c in Clearance.objects.select_for_update(of=("self",)).filter(
                vehicle_id__in=vehicle_ids
            )
        }
        new_rows = [
            Clearance(
                vehicle_id=vid,
                credential=credential,
                status=S.QUEUED,
                status_changed_at=now,
                status_known_at=now,
            )
            for vid in vehicle_ids
            if vid not in existing
        ]
        Clearance.objects.bulk_create(new_rows, batch_size=1000)
        events = [
            ClearanceEvent(
                clearance=row,
                from_status="",
                to_status=S.QUEUED,
                at=now,
                source=Source.USER if actor else Source.SYSTEM,
                actor=actor,
                detail="Clearance requested.",
            )
            for row in new_rows
        ]
        ClearanceEvent.objects.bulk_create(events, batch_size=1000)
        state.publish_changes(events)
        result.queued += len(new_rows)
        result.clearance_ids += [row.pk for row in new_rows]

        pairs = []
        for row in existing.values():
            if state.can_move(row.status, S.QUEUED):
                row.credential = credential
                pairs.append(
                    (
                        row,
                        Change(
                            status=S.QUEUED,
                            source=Source.USER if actor else Source.SYSTEM,
                            learned_at=now,
                            actor=actor,
                            detail="Clearance requested again.",
                        ),
                    )
                )
            else:
                result.skipped += 1
                result.skipped_reasons[f"already {row.status}"] += 1
        bulk = state.apply_changes(pairs, extra_fields=["credential"], now=now)
        result.queued += bulk.applied
        result.clearance_ids += [row.pk for row, _, _ in bulk.moves]
        result.skipped_reasons = +result.skipped_reasons
        if result.queued:
            _on_commit("request_clearances", credential.pk)
    return result


def reonboard(vehicles: Iterable[Vehicle | int], *, actor=None, credential=None) -> QueueResult:
    """Request clearance again for rejected / revoked / canceled / failed vehicles, with the
    credential they used before (or ``credential``)."""
    ids = _vehicle_ids(vehicles)
    total = QueueResult()
    by_credential: dict[int, list[int]] = {}
    for vehicle_id, credential_id in Clearance.objects.filter(vehicle_id__in=ids).values_list(
        "vehicle_id", "credential_id"
    ):
        key = credential.pk if credential else credential_id
        if key is not None:
            by_credential.setdefault(key, []).append(vehicle_id)
    for credential_id, vehicle_ids in by_credential.items():
        cred = credential or Credential.objects.get(pk=credential_id)
        part = queue_clearance_requests(vehicle_ids, credential=cred, actor=actor)
        total.queued += part.queued
        total.skipped += part.skipped
        total.clearance_ids += part.clearance_ids
        total.skipped_reasons.update(part.skipped_reasons)
    return total


# --- request (POST /v1/fleets/vehicles in batches) ------------------------------------------------


@dataclass
class RequestSummary:
    sent: int = 0
    batches: int = 0
    hm_calls: int = 0
    statuses: Counter = field(default_factory=Counter)
    unanswered: int = 0
    more: bool = False  # stopped at the deadline; more queued rows remain
    error: str = ""  # a credential-level failure that stopped the run


def _request_for(vehicle: Vehicle) -> ClearanceRequest:
    tags = vehicle.tags if isinstance(vehicle.tags, dict) else {}
    return ClearanceRequest(
        vin=vehicle.vin.upper(),
        brand=vehicle.brand,
        tags={str(k): str(v) for k, v in tags.items()} or None,
        control_odometer_km=vehicle.odometer_km,
    )


@contextlib.contextmanager
def _claim_guard(credential: Credential) -> Iterator[None]:
    """Databases without SKIP LOCKED (SQLite): one sender per credential, by a cache lock."""
    if connection.features.has_select_for_update_skip_locked:
        yield
        return
    from clearance.connect import CacheTokenStore

    # Waiting longer than this raises LockTimeout (transient): the task retries later.
    with CacheTokenStore(lock_timeout=300, wait_timeout=60).lock(
        f"clearance-request:{credential.pk}"
    ):
        yield


def _error_words(description: str | None) -> str:
    if not description:
        return "High Mobility refused the request without saying why."
    return f"High Mobility refused the request: {description}."


def request_clearances(
    credential_id: int, *, client: HMClient | None = None, deadline: float | None = None
) -> RequestSummary:
    """Send this credential's ``queued`` clearances, claimed with SKIP LOCKED, in batches of
    ``HM_CLEARANCE_BATCH_SIZE`` (control measures where known), and apply each VIN's answer.

    A transient HM error rolls the current batch back (its rows stay queued) and propagates so
    the task retries; batches already answered stay done. ``deadline`` (time.monotonic()):
    stop there and report ``more``.
    """
    credential = Credential.objects.get(pk=credential_id)
    summary = RequestSummary()
    batch_size = settings.HM_CLEARANCE_BATCH_SIZE
    # Batches go in pk order; everything up to last_pk was tried in this run (an id range, not a
    # growing exclusion list, so the claim query stays cheap on a queue of 100,000 rows).
    last_pk = 0
    try:
        client = client or hm_client(credential)
    except ValueError as exc:  # CredentialIncomplete and friends
        _record_error(Clearance.objects.filter(credential=credential, status=S.QUEUED), _words(exc))
        summary.error = _words(exc)
        return summary
    # PostgreSQL: the batch stays row-locked (SKIP LOCKED for other senders) during the HM call
    # and is answered in the same transaction. SQLite has no row locks and a reader blocks the
    # simulator's writes: there a cache lock makes one sender per credential, the batch is read
    # without a transaction and re-read when the answer is applied.
    row_locks = connection.features.has_select_for_update_skip_locked
    with _claim_guard(credential):
        while True:
            if deadline is not None and time.monotonic() > deadline:
                summary.more = Clearance.objects.filter(
                    credential=credential, status=S.QUEUED
                ).exists()
                break
            with transaction.atomic() if row_locks else contextlib.nullcontext():
                batch = list(
                    Clearance.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("vehicle")
                    .filter(credential=credential, status=S.QUEUED, pk__gt=last_pk)
                    .order_by("pk")[:batch_size]
                )
                if not batch:
                    break
                last_pk = batch[-1].pk
                learned_at = timezone.now()
                summary.hm_calls += 1
                try:
                    results = client.request_clearances([_request_for(r.vehicle) for r in batch])
                except (AuthenticationError, ForbiddenError) as exc:
                    # The application itself is refused: keep the rows queued, say why, stop.
                    _record_error(batch, _words(exc))
                    summary.error = _words(exc)
                    break
                except PermanentError as exc:
                    with transaction.atomic(savepoint=False):
                        _fail_batch(_fresh(batch, row_locks), _words(exc), learned_at)
                    summary.batches += 1
                    continue
                summary.batches += 1
                with transaction.atomic(savepoint=False):  # inside the batch's transaction
                    _apply_request_results(
                        credential, _fresh(batch, row_locks), results, learned_at, summary
                    )
    return summary


def _fresh(batch: list[Clearance], row_locks: bool) -> list[Clearance]:
    """The batch as stored now (without row locks it may have changed during the HM call)."""
    if row_locks:
        return batch
    return list(
        Clearance.objects.select_related("vehicle")
        .filter(pk__in=[row.pk for row in batch])
        .order_by("pk")
    )


def _apply_request_results(credential, batch, results, learned_at, summary) -> None:
    by_vin = {r.vin.upper(): r for r in results}
    pairs = []
    touched = []
    for row in batch:
        answer = by_vin.get(row.vehicle.vin.upper())
        if answer is None:
            row.last_error = "High Mobility did not answer for this vehicle; it will be sent again."
            row.last_error_at = learned_at
            touched.append(row)
            summary.unanswered += 1
            continue
        status = state.normalise(answer.status)
        summary.sent += 1
        summary.statuses[status] += 1
        row.requested_at = learned_at
        touched.append(row)
        if status == S.ERROR:
            row.last_error = _error_words(answer.description)
            row.last_error_at = learned_at
        pairs.append(
            (
                row,
                Change(
                    status=status,
                    source=Source.API,
                    learned_at=learned_at,
                    description=answer.description or None,
                    detail=answer.description or "",
                ),
            )
        )
    bulk = state.apply_changes(pairs, touched=touched)
    after_moves(credential, bulk.moves)


def _record_error(rows, words: str) -> None:
    now = timezone.now()
    if hasattr(rows, "update"):
        rows.update(last_error=words, last_error_at=now)
        return
    Clearance.objects.filter(pk__in=[r.pk for r in rows]).update(
        last_error=words, last_error_at=now
    )


def _fail_batch(batch, words: str, learned_at: datetime) -> None:
    pairs = []
    for row in batch:
        row.last_error = words
        row.last_error_at = learned_at
        pairs.append((row, Change(status=S.ERROR, source=Source.API, learned_at=learned_at)))
    state.apply_changes(pairs, touched=batch)


# --- sync (one GET /v1/fleets/vehicles per credential) ---------------------------------------------


@dataclass
class SyncSummary:
    credential: str = ""
    hm_calls: int = 0
    listed: int = 0
    compared: int = 0
    written: int = 0
    moves: Counter = field(default_factory=Counter)  # (from, to) -> n
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (vin, from, to)
    unknown_at_hm: int = 0  # ours, sent, but HM does not list them
    not_ours: int = 0  # HM lists them, we do not know them
    resent: bool = False
    error: str = ""

    @property
    def changed(self) -> int:
        return sum(self.moves.values())


SYNC_ONLY = (
    "id",
    "status",
    "status_changed_at",
    "hm_changed_at",
    "status_known_at",
    "requested_at",
    "description",
    "credential_id",
    "vehicle__vin",
)


def _might_change(row: Clearance, vehicle) -> bool:
    status = state.normalise(vehicle.status)
    if row.status != status:
        return True
    changed_at = vehicle.status_changed_at
    if changed_at is not None and (row.hm_changed_at is None or changed_at > row.hm_changed_at):
        return True
    reason = vehicle.reason
    return bool(reason) and reason != row.description


def sync_clearances(credential: Credential, *, client: HMClient | None = None) -> SyncSummary:
    """ONE list call; only the rows whose status moved are written (bulk), with their events.

    Queued rows that have waited longer than ``CLEARANCE_QUEUED_STUCK_SECONDS`` and that HM does
    not know are sent again.
    """
    summary = SyncSummary(credential=credential.name)
    client = client or hm_client(credential)
    learned_at = timezone.now()
    summary.hm_calls += 1
    listed = client.list_clearances()
    summary.listed = len(listed)
    by_vin = {v.vin.upper(): v for v in listed}

    rows = (
        Clearance.objects.filter(credential=credential)
        .select_related("vehicle")
        .only(*SYNC_ONLY)
        .order_by()
    )
    candidates: list[int] = []
    seen_vins: set[str] = set()
    for row in rows.iterator(chunk_size=2000):
        vin = row.vehicle.vin.upper()
        seen_vins.add(vin)
        summary.compared += 1
        vehicle = by_vin.get(vin)
        if vehicle is None:
            if row.status not in (S.QUEUED, S.ERROR):
                summary.unknown_at_hm += 1
            continue
        if _might_change(row, vehicle):
            candidates.append(row.pk)
    summary.not_ours = len(set(by_vin) - seen_vins)

    if candidates:
        with transaction.atomic():
            locked = list(
                Clearance.objects.select_for_update(of=("self",))
                .select_related("vehicle")
                .filter(pk__in=candidates)
                .order_by("pk")
            )
            pairs = []
            forced_rows = []
            for row in locked:
                vehicle = by_vin[row.vehicle.vin.upper()]
                for change in state.changes_from_hm(row, vehicle, learned_at=learned_at):
                    pairs.append((row, change))
                forced_rows.append((row, vehicle, row.status_known_at))
            bulk = state.apply_changes(pairs, now=learned_at)
            # Rows HM moved where the graph never leads: take HM's word (rare; logged).
            forced = []
            for row, vehicle, known_before in forced_rows:
                change = state.force_change_if_needed(
                    row, vehicle, learned_at=learned_at, known_before=known_before
                )
                if change is not None:
                    forced.append((row, change))
            forced_bulk = state.apply_changes(forced, now=learned_at) if forced else None
            moves = bulk.moves + (forced_bulk.moves if forced_bulk else [])
            summary.written = len(
                {r.pk for r in bulk.changed}
                | ({r.pk for r in forced_bulk.changed} if forced_bulk else set())
            )
            for row, before, after in moves:
                summary.moves[(before, after)] += 1
                if len(summary.changes) < 1000:
                    summary.changes.append((row.vehicle.vin, before, after))
            after_moves(credential, moves)

    stuck_before = learned_at - timedelta(seconds=settings.CLEARANCE_QUEUED_STUCK_SECONDS)
    stuck = Clearance.objects.filter(credential=credential, status=S.QUEUED).filter(
        Q(status_known_at__lt=stuck_before) | Q(status_known_at__isnull=True)
    )
    if stuck.exists():
        summary.resent = True
        _on_commit_or_now("request_clearances", credential.pk)
    cache.set(
        f"clearance:last-sync:{credential.pk}",
        {"at": learned_at.isoformat(), "changed": summary.changed, "listed": summary.listed},
        timeout=None,
    )
    return summary


def _on_commit_or_now(task_name: str, *args: Any) -> None:
    with transaction.atomic():
        _on_commit(task_name, *args)


# --- what follows a move ---------------------------------------------------------------------------


def after_moves(credential: Credential, moves: list[tuple[Clearance, str, str]]) -> None:
    """Side effects of status changes (after commit): legacy vehicle tokens issued on approval
    (service-account mode) and revoked when the access ends."""
    if credential.auth_mode != Credential.AuthMode.SERVICE_ACCOUNT or not moves:
        return
    approved = [row.pk for row, _, after in moves if after == S.APPROVED]
    ended = [row.pk for row, before, after in moves if before == S.APPROVED and after != before]
    if approved:
        _on_commit("issue_vehicle_tokens", approved)
    if ended:
        _on_commit("revoke_vehicle_tokens", ended)


# --- defleet (DELETE /v1/fleets/vehicles/{vin}) ---------------------------------------------------


@dataclass
class DefleetOutcome:
    vehicle_id: int
    vin: str
    ok: bool
    status: str = ""
    message: str = ""
    transient: bool = False


def explain_delete_refusal(exc: HMError, clearance: Clearance) -> str:
    """HM's 404/409/422 for DELETE, in words."""
    said = (exc.detail or "").lower()
    if isinstance(exc, ConflictError):
        if "transition" in said:
            return (
                "High Mobility is already changing this clearance (it is being revoked or "
                "canceled). Wait a few minutes; the status will update by itself."
            )
        if "removed" in said:
            return (
                "High Mobility says this clearance was already removed. The status will be "
                "corrected at the next sync."
            )
        return f"High Mobility cannot defleet this vehicle right now ({exc.detail or 'conflict'})."
    if isinstance(exc, UnprocessableError):
        if "too early" in said or "after 1 day" in said or "1 day" in said:
            when = ""
            if clearance.requested_at:
                ready = timezone.localtime(clearance.requested_at + timedelta(days=1))
                when = f" (after {ready:%d %b %Y %H:%M})"
            return (
                "A pending request can only be canceled one day after it was sent. "
                f"Try again later{when}."
            )
        if "not supported" in said:
            return (
                "This carmaker does not allow canceling a pending request. The vehicle can be "
                "defleeted once it is approved, or the request will end by itself."
            )
        return f"High Mobility could not defleet this vehicle: {exc.detail or exc.message}"
    if isinstance(exc, NotFoundError):
        return (
            "High Mobility does not know this vehicle for this application, so there is "
            "nothing to defleet."
        )
    return exc.message


NOT_DEFLEETABLE_WORDS = {
    S.QUEUED: "The request has not been sent to High Mobility yet; there is nothing to defleet.",
    S.REVOKING: "The defleet is already under way (revoking).",
    S.CANCELING: "The defleet is already under way (canceling).",
    S.REVOKED: "This vehicle is already defleeted (revoked).",
    S.CANCELED: "This vehicle's request was already canceled.",
    S.REJECTED: "The carmaker rejected this vehicle; there is nothing to defleet.",
    S.ERROR: "High Mobility never accepted this vehicle; there is nothing to defleet.",
}


def defleet(
    vehicles: Iterable[Vehicle | int],
    *,
    actor=None,
    clients: dict[int, HMClient] | None = None,
) -> list[DefleetOutcome]:
    """Revoke approved / cancel pending clearances, one DELETE per vehicle (HM has no bulk
    delete). Refusals (409/422/404) are written on the clearance in words; transient failures
    are reported (``transient=True``) for the caller to retry. Legacy vehicle tokens are revoked.
    """
    ids = _vehicle_ids(vehicles)
    clients = clients if clients is not None else {}
    outcomes = []
    rows = (
        Clearance.objects.select_related("vehicle", "credential")
        .filter(vehicle_id__in=ids)
        .order_by("pk")
    )
    found = set()
    for clearance in rows:
        found.add(clearance.vehicle_id)
        outcomes.append(_defleet_one(clearance, actor, clients))
    for vehicle_id in set(ids) - found:
        outcomes.append(
            DefleetOutcome(
                vehicle_id,
                "",
                False,
                message="No clearance was ever requested for this vehicle.",
            )
        )
    return outcomes


def _defleet_one(clearance: Clearance, actor, clients: dict[int, HMClient]) -> DefleetOutcome:
    vin = clearance.vehicle.vin
    outcome = DefleetOutcome(clearance.vehicle_id, vin, False, status=clearance.status)
    if clearance.status not in state.DEFLEETABLE:
        outcome.message = NOT_DEFLEETABLE_WORDS.get(
            clearance.status, f"A clearance in status {clearance.status!r} cannot be defleeted."
        )
        return outcome
    if clearance.credential is None:
        outcome.message = "This clearance has no HM credential; it cannot be defleeted."
        return outcome
    try:
        client = clients.get(clearance.credential_id) or hm_client(clearance.credential)
    except ValueError as exc:
        outcome.message = _words(exc)
        _record_error([clearance], outcome.message)
        return outcome
    clients[clearance.credential_id] = client
    learned_at = timezone.now()
    try:
        answer = client.delete_clearance(vin)
    except TransientError as exc:
        outcome.transient = True
        outcome.message = f"{exc.message} The defleet will be tried again."
        _record_error([clearance], outcome.message)
        return outcome
    except HMError as exc:
        outcome.message = explain_delete_refusal(exc, clearance)
        with transaction.atomic():
            _record_error([clearance], outcome.message)
            fleet_events.publish(
                [fleet_events.DefleetRefused(clearance.vehicle_id, outcome.message, learned_at)]
            )
        if isinstance(exc, ConflictError):
            _on_commit_or_now("sync_credential", clearance.credential_id)
        return outcome
    status = state.normalise(answer.status)
    state.apply_status(
        clearance,
        status,
        at=None,
        source=Source.USER,
        actor=actor,
        detail=f"Defleet requested; High Mobility answered {status}.",
        learned_at=learned_at,
    )
    outcome.ok = True
    outcome.status = clearance.status
    outcome.message = state.STATUS_WORDS.get(clearance.status, "")
    revoke_vehicle_tokens(clearance, client)  # legacy per-vehicle tokens end with the access
    return outcome


def queue_defleet(vehicles: Iterable[Vehicle | int], *, actor=None) -> int:
    """Defleet in the background (bulk actions); returns how many vehicles were queued."""
    ids = _vehicle_ids(vehicles)
    if ids:
        with transaction.atomic():
            _on_commit("defleet_vehicles", ids, actor.pk if actor else None)
    return len(ids)


# --- webhooks --------------------------------------------------------------------------------------


def delivery_id_for(body: bytes, header: str | None) -> str:
    """HM's X-HM-Delivery id, or (missing header) a digest of the body."""
    header = (header or "").strip()
    if header:
        return header[:200]
    return "sha256:" + hashlib.sha256(body).hexdigest()


def record_webhook(
    credential: Credential, body: bytes, payload: dict, *, delivery_id: str, event: str
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
                _on_commit("process_webhook", delivery.pk)
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
        if isinstance(payload.get("type"), str):
            return payload["type"]
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
    vehicle = payload.get("vehicle") if isinstance(payload.get("vehicle"), dict) else {}
    event = payload.get("event") if isinstance(payload.get("event"), dict) else {}
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


def _apply_webhook_change(clearance, delivery, event: dict, action: str):
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
    if decision.event is not None:
        after_moves(clearance.credential, [(clearance, before, clearance.status)])
    return decision, before


def _replay_refused_webhooks(clearance, delivery, vin: str) -> None:
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


# --- legacy per-vehicle tokens (service-account mode) ---------------------------------------------


def issue_vehicle_tokens(clearance_ids: Iterable[int], *, client: HMClient | None = None) -> int:
    """POST /v1/fleets/access_tokens for approved clearances without a token. Transient errors
    propagate (the task retries the remaining ones); permanent ones are written on the row."""
    issued = 0
    rows = (
        Clearance.objects.select_related("vehicle", "credential")
        .filter(pk__in=list(clearance_ids), status=S.APPROVED, vehicle_token__isnull=True)
        .order_by("pk")
    )
    for clearance in rows:
        if clearance.credential.auth_mode != Credential.AuthMode.SERVICE_ACCOUNT:
            continue
        hm = client or hm_client(clearance.credential)
        try:
            token = hm.issue_vehicle_token(clearance.vehicle.vin)
        except PermanentError as exc:
            _record_error([clearance], f"Could not get the vehicle's access token: {exc.message}")
            continue
        VehicleToken.objects.update_or_create(
            clearance=clearance,
            defaults={
                "access_token": token.access_token,
                "refresh_token": token.refresh_token or "",
                "authorization_id": token.authorization_id or "",
                "scope": token.scope,
                "expires_at": token.expires_at,
            },
        )
        issued += 1
    return issued


def refresh_vehicle_token(
    token_pk: int, *, client: HMClient | None = None, margin_seconds: int | None = None
) -> bool:
    """Refresh one vehicle token if it expires within the margin, under a row lock; the rotated
    refresh token is saved in the same transaction. False when another worker already did."""
    margin = timedelta(
        seconds=settings.VEHICLE_TOKEN_REFRESH_MARGIN_SECONDS
        if margin_seconds is None
        else margin_seconds
    )
    with _token_guard(token_pk):
        token = (
            VehicleToken.objects.select_for_update(of=("self",))
            .select_related("clearance__credential")
            .filter(pk=token_pk)
            .first()
        )
        if token is None or token.expires_at > timezone.now() + margin:
            return False
        if not token.refresh_token:
            return False
        hm = client or hm_client(token.clearance.credential)
        try:
            fresh = hm.refresh_vehicle_token(token.refresh_token)
        except (PermanentError, ValueError) as exc:
            _record_error(
                [token.clearance], f"Could not renew the vehicle's access token: {_words(exc)}"
            )
            token.delete()
            return False
        token.access_token = fresh.access_token
        if fresh.refresh_token:
            token.refresh_token = fresh.refresh_token
        token.expires_at = fresh.expires_at
        token.scope = fresh.scope or token.scope
        token.save()
    return True


@contextlib.contextmanager
def _token_guard(token_pk: int) -> Iterator[None]:
    """PostgreSQL: a transaction, so select_for_update holds the token row until the rotated
    refresh token is saved. SQLite (no row locks; an open reader would block the simulator's
    writes): a cache lock per token instead, and autocommit."""
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            yield
        return
    from clearance.connect import CacheTokenStore

    with CacheTokenStore(lock_timeout=120, wait_timeout=60).lock(f"vehicle-token:{token_pk}"):
        yield


def expiring_vehicle_tokens(margin_seconds: int | None = None) -> list[int]:
    margin = (
        settings.VEHICLE_TOKEN_REFRESH_MARGIN_SECONDS if margin_seconds is None else margin_seconds
    )
    cutoff = timezone.now() + timedelta(seconds=margin)
    return list(
        VehicleToken.objects.filter(expires_at__lte=cutoff, clearance__status=S.APPROVED)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:1000]
    )


def revoke_vehicle_tokens(clearance: Clearance, client: HMClient | None = None) -> bool:
    """DELETE /v1/access_tokens for the clearance's legacy token; the row goes either way
    (a failed revoke is logged: HM ends the tokens with the clearance anyway)."""
    token = VehicleToken.objects.filter(clearance=clearance).first()
    if token is None:
        return False
    try:
        hm = client or hm_client(clearance.credential)
        hm.revoke_token(token.refresh_token or token.access_token)
    except (HMError, ValueError) as exc:
        logger.warning("Could not revoke the vehicle token of clearance %s: %s", clearance.pk, exc)
    token.delete()
    return True


def vehicle_access_token(clearance: Clearance, *, client: HMClient | None = None) -> str | None:
    """A usable legacy vehicle access token (refreshed first when it is about to expire)."""
    token = VehicleToken.objects.filter(clearance=clearance).first()
    if token is None:
        return None
    if token.expires_at <= timezone.now() + timedelta(
        seconds=settings.VEHICLE_TOKEN_REFRESH_MARGIN_SECONDS
    ):
        refresh_vehicle_token(token.pk, client=client)
        token = VehicleToken.objects.filter(clearance=clearance).first()
    return token.access_token if token else None


def webhook_payload_json(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
