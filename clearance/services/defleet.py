"""Defleet: revoke approved and cancel pending clearances, one ``DELETE`` per vehicle (HM has
no bulk delete), with HM's refusals (404/409/422) explained in words on the clearance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
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
from clearance.models import Clearance
from clearance.services.common import record_error, vehicle_ids, words
from clearance.services.vehicle_tokens import revoke_vehicle_tokens
from clearance.state import Source
from vehicles import events as fleet_events
from vehicles.models import Vehicle


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
    outcome.message = statuses.OUTCOME_WORDS.get(clearance.status, "")
    revoke_vehicle_tokens(clearance, client)  # legacy per-vehicle tokens end with the access
    return outcome


def queue_defleet(vehicles: Iterable[Vehicle | int], *, actor: Any = None) -> int:
    """Defleet in the background (bulk actions); returns how many vehicles were queued."""
    ids = vehicle_ids(vehicles)
    if ids:
        with transaction.atomic():
            tasks.defleet_vehicles.delay_on_commit(ids, actor.pk if actor else None)
    return len(ids)
