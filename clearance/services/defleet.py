"""Defleet: revoke approved and cancel pending clearances, one ``DELETE`` per vehicle (HM has
no bulk delete), with HM's refusals (404/409/422) explained in words on the clearance.

Bulk defleets are durable work (``HMWork``, see ``durable/__init__.py``): any number of vehicles
is written at once, then done ``DEFLEET_BATCH`` per task, each vehicle retried on its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from clearance import state, statuses, tasks
from clearance.clients import hm_client_for
from clearance.hm import (
    ConflictError,
    HMClient,
    HMError,
    NotFoundError,
    TransientError,
    UnprocessableError,
)
from clearance.models import Clearance, ClearanceStatus, HMWork
from clearance.services.common import record_error, retry_words, vehicle_ids, words
from clearance.services.token_work import revoke_later
from clearance.state import Source
from durable import work
from vehicles import events as fleet_events
from vehicles.models import Vehicle

S = ClearanceStatus
# Vehicles per defleet task (one DELETE each): short tasks, a warm shutdown within seconds.
DEFLEET_BATCH = 25


@dataclass
class DefleetOutcome:
    vehicle_id: int
    vin: str
    ok: bool
    status: str = ""
    message: str = ""
    transient: bool = False
    retry_after: float | None = None  # HM's own "retry after" for a transient failure


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


def defleet(
    vehicles: Iterable[Vehicle | int],
    *,
    actor: Any = None,
    clients: dict[int, HMClient] | None = None,
) -> list[DefleetOutcome]:
    """Revoke approved / cancel pending clearances, one DELETE per vehicle (HM has no bulk
    delete). Refusals (409/422/404) are written on the clearance in words; transient failures
    are reported (``transient=True``) for the caller to retry. Legacy vehicle tokens are revoked.
    """
    ids = vehicle_ids(vehicles)
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


def _defleet_one(clearance: Clearance, actor: Any, clients: dict[int, HMClient]) -> DefleetOutcome:
    vin = clearance.vehicle.vin
    outcome = DefleetOutcome(clearance.vehicle_id, vin, False, status=clearance.status)
    if clearance.status not in statuses.DEFLEETABLE:
        outcome.message = statuses.NOT_DEFLEETABLE_WORDS.get(
            clearance.status, f"A clearance in status {clearance.status!r} cannot be defleeted."
        )
        return outcome
    credential = clearance.credential
    if credential is None:
        outcome.message = "This clearance has no HM credential; it cannot be defleeted."
        return outcome
    try:
        client = clients.get(credential.pk) or hm_client_for(credential)
    except ValueError as exc:
        outcome.message = words(exc)
        record_error([clearance], outcome.message)
        return outcome
    clients[credential.pk] = client
    learned_at = timezone.now()
    try:
        answer = client.delete_clearance(vin)
    except TransientError as exc:
        outcome.transient = True
        outcome.retry_after = getattr(exc, "retry_after", None)
        outcome.message = f"{exc.message} The defleet will be tried again."
        record_error([clearance], outcome.message)
        return outcome
    except HMError as exc:
        outcome.message = explain_delete_refusal(exc, clearance)
        with transaction.atomic():
            record_error([clearance], outcome.message)
            fleet_events.publish(
                [fleet_events.DefleetRefused(clearance.vehicle_id, outcome.message, learned_at)]
            )
        if isinstance(exc, ConflictError):
            tasks.sync_credential.delay_on_commit(clearance.credential_id)
        return outcome
    status = state.normalise(answer.status)
    with transaction.atomic():
        state.apply_status(
            clearance,
            status,
            at=None,
            source=Source.USER,
            actor=actor,
            detail=f"Defleet requested; High Mobility answered {status}.",
            learned_at=learned_at,
        )
        revoke_later([clearance])  # legacy per-vehicle tokens end with the access
    outcome.ok = True
    outcome.status = clearance.status
    outcome.message = statuses.OUTCOME_WORDS.get(clearance.status, "")
    return outcome


def queue_defleet(vehicles: Iterable[Vehicle | int], *, actor: Any = None) -> int:
    """Defleet in the background (bulk actions): one durable ``HMWork`` row per clearance,
    written in the caller's transaction, and a waker per credential after commit. Returns how
    many vehicles were queued."""
    ids = vehicle_ids(vehicles)
    if not ids:
        return 0
    user = actor if getattr(actor, "pk", None) else None
    with transaction.atomic():
        rows = list(
            Clearance.objects.filter(vehicle_id__in=ids, credential__isnull=False).values_list(
                "pk", "credential_id"
            )
        )
        for chunk in itertools.batched(rows, 1000):
            HMWork.objects.bulk_create(
                [
                    HMWork(clearance_id=pk, credential_id=cid, kind=HMWork.Kind.DEFLEET, actor=user)
                    for pk, cid in chunk
                ],
                ignore_conflicts=True,
            )
        for credential_id in sorted({cid for _pk, cid in rows}):
            tasks.defleet_due.delay_on_commit(credential_id)
    return len(ids)


def defleet_work(credential_id: int) -> QuerySet[HMWork]:
    """The credential's defleets that are not finished (durable work, ``HMWork``)."""
    return HMWork.objects.filter(credential_id=credential_id, kind=HMWork.Kind.DEFLEET)


def defleet_due(
    credential_id: int, *, batch_size: int = DEFLEET_BATCH, stop: Callable[[], bool] | None = None
) -> tuple[int, bool]:
    """Up to ``batch_size`` of the credential's due defleets (one DELETE each), each claimed on
    its own, so a worker killed mid-call holds one vehicle for one short lease. A transient
    failure is retried per vehicle after its own backoff (never sooner than HM's retry-after);
    refusals are written in words and done. Stops between two vehicles when ``stop()`` says so.
    Returns (vehicles done, whether more are due now)."""
    clients: dict[int, HMClient] = {}
    done = 0
    for _ in range(batch_size):
        if stop is not None and stop():
            break
        item = (
            work.claim(defleet_work(credential_id), limit=1, lease_seconds=hm_lease())
            .select_related("clearance__vehicle", "clearance__credential", "actor")
            .first()
        )
        if item is None:
            return done, False
        outcome = _defleet_one(item.clearance, item.actor, clients)
        if outcome.transient:
            at = work.retry(HMWork, [item], outcome.message, retry_after=outcome.retry_after)
            record_error([item.clearance], retry_words(outcome.message, at))
        else:
            work.complete(HMWork, [item])
            done += 1
    return done, work.due(defleet_work(credential_id)).exists()


def hm_lease() -> float:
    """Longest one claimed defleet may take: a token and a DELETE at their slowest."""
    return 2 * (settings.HM_CONNECT_TIMEOUT + settings.HM_READ_TIMEOUT) + 15
