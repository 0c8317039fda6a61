"""What the fleet pages' buttons do: add a vehicle, request clearance, defleet (one or many).

Each action calls the lifecycle flows (onboarding, defleet) and returns an ``ActionResult``,
which the pages turn into words.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from clearance import statuses
from clearance.models import Credential
from clearance.services import defleet, onboarding
from organizations.models import Organization
from vehicles.models import Vehicle

# Vehicles handled per transaction (and per background task) by the bulk actions.
BATCH_SIZE = 1000


@dataclass
class ActionResult:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    background: bool = False
    skipped_reasons: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # worth knowing, nothing went wrong
    outcome_status: str = ""
    unexplained_skips: int = 0  # skipped by the services without a reason (e.g. other org)

    @property
    def skipped_reason(self) -> str:
        return ", ".join(f"{n} {reason}" for reason, n in self.skipped_reasons.most_common())


def _status_of(vehicle: Vehicle) -> str | None:
    try:
        return vehicle.clearance.status
    except Vehicle.clearance.RelatedObjectDoesNotExist:
        return None


@transaction.atomic
def add_vehicle(
    *,
    organization: Organization,
    user: Any,
    vin: str,
    brand: str,
    license_plate: str = "",
    nickname: str = "",
    tags: dict[str, str] | None = None,
    odometer_km: int | None = None,
    credential: Credential,
) -> Vehicle:
    """Save the vehicle and queue its clearance request (sent to HM once committed)."""

    vehicle = Vehicle.objects.create(
        organization=organization,
        vin=vin,
        brand=brand,
        license_plate=license_plate,
        nickname=nickname,
        tags=tags or {},
        odometer_km=odometer_km,
    )
    onboarding.queue_clearance_requests([vehicle], credential=credential, actor=user)
    return vehicle


def request_clearances(
    vehicles: QuerySet[Vehicle] | Sequence[Vehicle],
    *,
    user: Any,
    credential: Credential | None = None,
) -> ActionResult:
    """(Re-)send clearance requests: vehicles never requested go out with `credential`;
    rejected / revoked / canceled / failed ones with the credential they used before.
    Queued, pending, approved and in-progress ones are skipped (the service decides).

    A queryset (a whole filter) is read in batches of ``BATCH_SIZE`` ids, never all at once."""
    result = ActionResult()
    for batch in _in_batches(vehicles):
        fresh = [vehicle for vehicle in batch if _status_of(vehicle) is None]
        known = [vehicle for vehicle in batch if _status_of(vehicle) is not None]
        parts = []
        if fresh:
            if credential is None:
                result.failed += len(fresh)
                if not result.problems:
                    result.problems.append(
                        "This organization has no High Mobility credential yet: an owner needs "
                        "to add one before vehicles can be sent."
                    )
            else:
                parts.append(
                    onboarding.queue_clearance_requests(fresh, credential=credential, actor=user)
                )
        if known:
            parts.append(onboarding.reonboard(known, actor=user))
            # The service skips silently what it cannot re-send without a credential.
        done = 0
        for part in parts:
            done += part.queued + part.skipped
            result.done += part.queued
            result.skipped += part.skipped
            result.skipped_reasons.update(part.skipped_reasons)
        leftover = len(known) + (len(fresh) if credential is not None else 0) - done
        if leftover > 0:
            # e.g. "other organization" counts, or rows the service ignored.
            result.skipped += leftover
            result.unexplained_skips += leftover
    if result.unexplained_skips and not result.skipped_reasons:
        result.skipped_reasons["could not be sent"] += result.unexplained_skips
    return result


def defleet_vehicle(vehicle: Vehicle, *, user: Any) -> ActionResult:
    """Defleet one vehicle now (one DELETE at HM) so refusals are explained at once."""

    result = ActionResult()
    outcomes = defleet.defleet([vehicle], actor=user)
    if not outcomes:
        result.failed = 1
        return result
    (outcome,) = outcomes
    if outcome.ok:
        result.done = 1
        result.outcome_status = outcome.status
    elif outcome.transient:
        # HM did not answer (timeout, 5xx, 429): the background task retries with backoff.
        defleet.queue_defleet([vehicle], actor=user)
        result.done = 1
        result.background = True
        result.notices.append(
            "High Mobility did not answer in time; the defleet will be tried again in the "
            "background."
        )
    else:
        result.failed = 1
        if outcome.message:
            result.problems.append(outcome.message)
    return result


def defleet_vehicles(vehicles: QuerySet[Vehicle] | Sequence[Vehicle], *, user: Any) -> ActionResult:
    """Bulk defleet in the background: approved -> revoking, pending -> canceling. A queryset
    (a whole filter) is queued in batches of ``BATCH_SIZE`` vehicles, one task each."""
    result = ActionResult(background=True)
    for batch in _in_batches(vehicles):
        wanted = [vehicle for vehicle in batch if statuses.can_defleet(_status_of(vehicle))]
        if skipped := len(batch) - len(wanted):
            result.skipped += skipped
            result.skipped_reasons["not approved or pending"] += skipped
        if wanted:
            result.done += defleet.queue_defleet(wanted, actor=user)
    return result


def _in_batches(vehicles: QuerySet[Vehicle] | Sequence[Vehicle]) -> Iterator[list[Vehicle]]:
    """The vehicles in batches: a queryset is streamed from the database (only what the
    actions read), so a filter of 100,000 vehicles never sits in memory at once."""
    if isinstance(vehicles, QuerySet):
        rows: Iterable[Vehicle] = (
            vehicles.select_related(None)
            .select_related("clearance")
            .only("pk", "vin", "clearance__status")
            .order_by("pk")
            .iterator(chunk_size=BATCH_SIZE)
        )
    else:
        rows = vehicles
    yield from (list(batch) for batch in itertools.batched(rows, BATCH_SIZE))
