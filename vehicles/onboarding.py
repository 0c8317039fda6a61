"""Writes behind the fleet pages: add a vehicle, request clearance, defleet (single and bulk).

Thin glue between the views and the clearance lifecycle (`clearance.services`), which owns the
state machine, the events and the HM calls. Each function returns an `ActionResult` that the
views turn into words.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction

from clearance.models import Credential
from organizations.models import Organization
from vehicles.models import Vehicle
from vehicles.selectors import DEFLEETABLE_STATUSES


@dataclass
class ActionResult:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    background: bool = False
    skipped_reasons: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # worth knowing, nothing went wrong
    outcome_status: str = ""

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
    user,
    vin: str,
    brand: str,
    license_plate: str = "",
    nickname: str = "",
    tags: dict | None = None,
    odometer_km: int | None = None,
    credential: Credential,
) -> Vehicle:
    """Save the vehicle and queue its clearance request (sent to HM once committed)."""
    from clearance import services

    vehicle = Vehicle.objects.create(
        organization=organization,
        vin=vin,
        brand=brand,
        license_plate=license_plate,
        nickname=nickname,
        tags=tags or {},
        odometer_km=odometer_km,
    )
    services.queue_clearance_requests([vehicle], credential=credential, actor=user)
    return vehicle


def request_clearances(
    vehicles: Sequence[Vehicle], *, user, credential: Credential | None = None
) -> ActionResult:
    """(Re-)send clearance requests: vehicles never requested go out with `credential`;
    rejected / revoked / canceled / failed ones with the credential they used before.
    Queued, pending, approved and in-progress ones are skipped (the service decides)."""
    from clearance import services

    result = ActionResult()
    fresh = [v for v in vehicles if _status_of(v) is None]
    known = [v for v in vehicles if _status_of(v) is not None]
    parts = []
    if fresh:
        if credential is None:
            result.failed += len(fresh)
            result.problems.append(
                "This organization has no High Mobility credential yet: an owner needs to add "
                "one before vehicles can be sent."
            )
        else:
            parts.append(
                services.queue_clearance_requests(fresh, credential=credential, actor=user)
            )
    if known:
        parts.append(services.reonboard(known, actor=user))
        # The service skips silently what it cannot re-send without a credential.
    for part in parts:
        result.done += part.queued
        result.skipped += part.skipped
        result.skipped_reasons.update(part.skipped_reasons)
    leftover = len(vehicles) - result.failed - result.done - result.skipped
    if leftover > 0:
        # e.g. "other organization" counts, or rows the service ignored.
        result.skipped += leftover
        if not result.skipped_reasons:
            result.skipped_reasons["could not be sent"] += leftover
    return result


def defleet_vehicle(vehicle: Vehicle, *, user) -> ActionResult:
    """Defleet one vehicle now (one DELETE at HM) so refusals are explained at once."""
    from clearance import services

    result = ActionResult()
    (outcome,) = services.defleet([vehicle], actor=user) or [None]
    if outcome is None:
        result.failed = 1
        return result
    if outcome.ok:
        result.done = 1
        result.outcome_status = outcome.status
    elif outcome.transient:
        # HM did not answer (timeout, 5xx, 429): the background task retries with backoff.
        services.queue_defleet([vehicle], actor=user)
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


def defleet_vehicles(vehicles: Sequence[Vehicle], *, user) -> ActionResult:
    """Bulk defleet in the background: approved -> revoking, pending -> canceling."""
    from clearance import services

    result = ActionResult(background=True)
    wanted = []
    for vehicle in vehicles:
        status = _status_of(vehicle)
        if status in DEFLEETABLE_STATUSES:
            wanted.append(vehicle)
        else:
            result.skipped += 1
            result.skipped_reasons["not approved or pending"] += 1
    if wanted:
        result.done = services.queue_defleet(wanted, actor=user)
    return result
