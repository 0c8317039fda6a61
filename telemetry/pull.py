"""Pulling telemetry from HM: one vehicle at a time (the scheduled pull and the Refresh
button), with a status per vehicle that the panel shows and that keeps a second pull from being
queued while one is waiting. HM's answers and refusals are explained in words."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from clearance import statuses
from clearance.clients import hm_client_for
from clearance.hm import errors as hm
from clearance.models import Credential
from telemetry import tasks
from telemetry.models import TelemetrySnapshot
from telemetry.parse import TelemetryParseError, parse_rest
from telemetry.services import record_snapshot
from vehicles.models import Vehicle

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PullOutcome:
    ok: bool
    message: str
    snapshot_id: int | None = None
    retryable: bool = False


# A vehicle's pull status doubles as the "a pull is already waiting" marker: while it says
# queued, running or retrying and its deadline ("until") has not passed, nobody queues another
# pull. The Refresh button (request_refresh) and the scheduled pull (tasks.pull_approved_vehicles)
# both use it; the deadline keeps a lost task from blocking a vehicle for good. A status written
# for a Refresh somebody pressed says so ("requested"): only those make the panel busy or show
# "Refreshed: ..."; a scheduled pull never claims to be a refresh.
WAITING_STATES = frozenset({"queued", "running", "retrying"})
REFRESH_WAIT = timedelta(minutes=2)
STATUS_TIMEOUT = 24 * 3600


def _status_key(public_id: Any) -> str:
    # The public id, not the pk: a key can never describe another (re-created) vehicle.
    return f"telemetry:pull:{public_id}"


def _status(
    state: str,
    message: str,
    *,
    wait: timedelta = REFRESH_WAIT,
    scheduled: bool = False,
    requested: bool = False,
) -> dict[str, Any]:
    now = timezone.now()
    status: dict[str, Any] = {
        "state": state,
        "message": message,
        "at": now.isoformat(),
        "until": (now + wait).isoformat(),
    }
    if scheduled:
        status["scheduled"] = True
    if requested:
        status["requested"] = True
    return status


def set_pull_status(
    vehicle: Vehicle, state: str, message: str = "", *, requested: bool = False
) -> None:
    """Remember the last pull of a vehicle (queued/running/ok/failed) for the panel.

    ``requested``: the pull answers a Refresh somebody pressed (not a scheduled one).
    """
    cache.set(
        _status_key(vehicle.public_id),
        _status(state, message, requested=requested),
        timeout=STATUS_TIMEOUT,
    )


def get_pull_status(vehicle: Vehicle) -> dict[str, Any] | None:
    return cache.get(_status_key(vehicle.public_id))


def pull_is_waiting(
    status: dict[str, Any] | None,
    *,
    now: datetime | None = None,
    requested_only: bool = False,
) -> bool:
    """Whether a status says a pull is queued or under way (the "already queued" marker).

    ``requested_only``: only a pull for a Refresh somebody pressed counts (the panel's "busy").
    """
    if not status or status.get("state") not in WAITING_STATES:
        return False
    if requested_only and not status.get("requested"):
        return False
    try:
        if status.get("until"):
            until = datetime.fromisoformat(status["until"])
        else:  # written before deadlines existed
            until = datetime.fromisoformat(status["at"]) + REFRESH_WAIT
    except (KeyError, TypeError, ValueError):
        return False
    return (now or timezone.now()) < until


def waiting_pulls(public_ids: Iterable[Any]) -> set[Any]:
    """The public ids among these whose pull is still waiting (one cache round trip)."""
    keys = {_status_key(public_id): public_id for public_id in public_ids}
    if not keys:
        return set()
    now = timezone.now()
    return {
        keys[key]
        for key, status in cache.get_many(list(keys)).items()
        if pull_is_waiting(status, now=now)
    }


def mark_pull_scheduled(public_id: Any, *, wait: timedelta) -> None:
    """Set the marker for a pull the beat job queues (with a countdown): waiting until then."""
    cache.set(
        _status_key(public_id),
        _status("queued", "A scheduled pull is queued.", wait=wait, scheduled=True),
        timeout=STATUS_TIMEOUT,
    )


def refresh_unavailable_reason(vehicle: Vehicle, *, has_data: bool = False) -> str:
    """Why the Refresh button cannot work for this vehicle, in words ("" when it can).

    Only an approved clearance with a credential can give data; anything else can only fail.
    ``has_data``: data received earlier is on the panel, so the words never say "No data yet".
    """
    clearance = getattr(vehicle, "clearance", None)
    status = clearance.status if clearance is not None else None
    if clearance is not None and statuses.data_flows(status) and clearance.credential_id is None:
        return (
            "The clearance is approved but linked to no High Mobility credential, so no "
            "data can be fetched. An owner can fix this on the Credentials page."
        )
    return statuses.why_no_data(status, has_data=has_data)


def request_refresh(vehicle: Vehicle) -> bool:
    """Queue a pull for one vehicle (the Refresh button).

    False when it cannot work (see refresh_unavailable_reason) or a Refresh is already queued.
    A scheduled pull does not count: the user asked for data now.
    """
    if refresh_unavailable_reason(vehicle):
        return False
    if pull_is_waiting(get_pull_status(vehicle), requested_only=True):
        return False
    set_pull_status(vehicle, "queued", "Asking High Mobility for fresh data…", requested=True)
    not_queued = partial(set_pull_status, vehicle, "failed", REFRESH_NOT_QUEUED, requested=True)
    tasks.pull_vehicle_telemetry.delay_on_commit(vehicle.pk, requested=True, on_error=not_queued)
    return True


REFRESH_NOT_QUEUED = (
    "The refresh could not be started: the task queue is unreachable, so no background worker "
    "can ask High Mobility. Try again in a minute."
)


def explain_hm_error(exc: Exception) -> str:
    """HM's vehicle-data errors in words a fleet manager understands (PROTOCOL.md §4)."""
    detail = getattr(exc, "detail", "") or ""
    status = getattr(exc, "status_code", None)
    if isinstance(exc, hm.VehicleUnreachable) or status == 408:
        return (
            "The vehicle is offline or asleep, so it could not send fresh data. "
            "The last known values are shown; the next scheduled pull will try again."
        )
    if status == 422 and "pending" in f"{detail} {exc}".lower():
        return (
            "High Mobility has no data for this vehicle yet (pending). This is normal right "
            "after the clearance was approved; data usually appears within minutes."
        )
    if status == 403 or isinstance(exc, hm.ForbiddenError):
        if "privacy" in detail.lower():
            return (
                "The driver has turned on privacy mode, so the carmaker shares no data "
                "until it is turned off."
            )
        return (
            "High Mobility has no active consent for this vehicle: the clearance may have been "
            "revoked or not yet granted by the carmaker." + (f" ({detail})" if detail else "")
        )
    if status == 401 or isinstance(exc, hm.AuthenticationError):
        return (
            "High Mobility did not accept the credentials (or the carmaker removed the consent)."
            + (f" ({detail})" if detail else "")
        )
    if isinstance(exc, hm.RateLimited):
        return "Too many requests to High Mobility right now; trying again shortly."
    if isinstance(exc, hm.TransientError):
        return f"{getattr(exc, 'message', str(exc))} Trying again shortly."
    return getattr(exc, "message", None) or "High Mobility refused the request."


def _client_for(credential: Credential) -> Any:
    """The HM client of a credential (built by the clearance app; app token shared via cache)."""
    return hm_client_for(credential)


def _record_pull_status(vehicle: Vehicle, state: str, message: str, *, requested: bool) -> None:
    """Write a pull's status, unless a scheduled pull would hide a Refresh still under way."""
    if not requested and pull_is_waiting(get_pull_status(vehicle), requested_only=True):
        return  # the panel waits for the answer to the Refresh somebody pressed
    set_pull_status(vehicle, state, message, requested=requested)


def pull_vehicle(vehicle_id: int, *, requested: bool = False) -> PullOutcome:
    """GET /v1/vehicle-data/autoapi-13/{vin} for one approved vehicle and store the snapshot.

    ``requested``: the pull answers a Refresh somebody pressed (the panel shows its result).
    """

    vehicle = Vehicle.objects.select_related("clearance__credential").filter(pk=vehicle_id).first()
    if vehicle is None:
        return PullOutcome(False, "The vehicle no longer exists.")
    clearance = getattr(vehicle, "clearance", None)
    if clearance is None or clearance.credential is None:
        outcome = PullOutcome(False, "This vehicle has no clearance with High Mobility yet.")
    elif not statuses.data_flows(clearance.status):
        outcome = PullOutcome(
            False,
            f"Telemetry is available once the clearance is approved "
            f"(it is {clearance.status} now).",
        )
    else:
        _record_pull_status(vehicle, "running", "Waiting for High Mobility…", requested=requested)
        outcome = _pull(vehicle, clearance.credential, hm)
    _record_pull_status(
        vehicle,
        "ok" if outcome.ok else ("retrying" if outcome.retryable else "failed"),
        outcome.message,
        requested=requested,
    )
    return outcome


def _pull(vehicle: Vehicle, credential: Credential, hm: Any) -> PullOutcome:
    try:
        client = _client_for(credential)
    except ValueError as exc:  # clearance.clients.CredentialIncomplete
        return PullOutcome(False, f"The High Mobility credential is incomplete: {exc}")
    try:
        payload = client.get_vehicle_data(vehicle.vin)
    except hm.HMError as exc:
        retryable = isinstance(exc, hm.TransientError) and not isinstance(
            exc, hm.VehicleUnreachable
        )
        logger.info("Telemetry pull for vehicle %s failed: %r", vehicle.pk, exc)
        return PullOutcome(False, explain_hm_error(exc), retryable=retryable)
    finally:
        close = getattr(client, "close", None)
        if close:
            close()
    try:
        parsed = parse_rest(payload)
    except TelemetryParseError as exc:
        return PullOutcome(False, f"High Mobility sent vehicle data we could not read: {exc}.")
    snapshot = record_snapshot(vehicle, parsed, source=TelemetrySnapshot.Source.PULL)
    count = sum(1 for name in parsed.SCALAR_FIELDS if getattr(parsed, name) is not None)
    return PullOutcome(
        True,
        f"Received {count} values from High Mobility.",
        snapshot_id=snapshot.pk if snapshot else None,
    )


def approved_vehicles() -> list[tuple[int, Any]]:
    """(pk, public id) of every approved vehicle with a credential, in a stable order."""
    return list(
        Vehicle.objects.filter(
            clearance__status__in=statuses.DATA_FLOWS, clearance__credential__isnull=False
        )
        .order_by("pk")
        .values_list("pk", "public_id")
    )
