"""Pulling telemetry from HM, one vehicle at a time, with the status the panel shows.

The pulls are durable work (``telemetry/schedule.py``): each approved vehicle's
``TelemetryPull`` row says when it is pulled next, whether a Refresh somebody pressed is waiting
and what the last pull got, in words. The row is the status; nothing else is kept. HM's answers
and refusals are explained in words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db.models import Q
from django.utils import timezone

from clearance import statuses
from clearance.clients import hm_client_for
from clearance.hm import errors as hm
from clearance.models import Credential
from durable.models import WorkState
from telemetry import schedule, tasks
from telemetry.models import TelemetryPull, TelemetrySnapshot
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
    retry_after: float | None = None  # HM's own "retry after" for a transient failure


# The status the panel reads (built from the vehicle's row): "queued", "running" or "retrying"
# while a Refresh somebody pressed waits for its answer ("requested"), for at most REFRESH_WAIT
# (then the panel stops saying "Refreshing…"; the row stays due until a pull answers it); else
# the last pull's outcome ("ok", "failed", "retrying"). Only an answer to a Refresh shows as
# "Refreshed: ..."; a scheduled pull never claims to be a refresh.
WAITING_STATES = frozenset({"queued", "running", "retrying"})
REFRESH_WAIT = timedelta(minutes=2)


def status_of(row: TelemetryPull | None) -> dict[str, Any] | None:
    """The panel's pull status of a schedule row (None: nothing to say)."""
    if row is None:
        return None
    if row.requested_at is not None:
        retrying = row.outcome_requested and row.outcome == TelemetryPull.Outcome.RETRYING
        if retrying and row.outcome_at and row.outcome_at >= row.requested_at:
            state, message, at = "retrying", row.outcome_message, row.outcome_at
        elif row.state == WorkState.RUNNING and row.next_attempt_at > timezone.now():
            state, message, at = "running", "Waiting for High Mobility…", row.requested_at
        else:
            state, message, at = "queued", "Asking High Mobility for fresh data…", row.requested_at
        until = row.requested_at + REFRESH_WAIT
        return _status(state, message, at or row.requested_at, until, requested=True)
    if not row.outcome or row.outcome_at is None:
        return None
    until = row.next_attempt_at if row.outcome == "retrying" else row.outcome_at
    return _status(
        row.outcome, row.outcome_message, row.outcome_at, until, requested=row.outcome_requested
    )


def _status(
    state: str, message: str, at: datetime, until: datetime, *, requested: bool
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "state": state,
        "message": message,
        "at": at.isoformat(),
        "until": until.isoformat(),
    }
    if requested:
        status["requested"] = True
    return status


def get_pull_status(vehicle: Vehicle) -> dict[str, Any] | None:
    return status_of(TelemetryPull.objects.filter(vehicle_id=vehicle.pk).first())


def pull_is_waiting(
    status: dict[str, Any] | None,
    *,
    now: datetime | None = None,
    requested_only: bool = False,
) -> bool:
    """Whether a status says a pull is queued or under way.

    ``requested_only``: only a pull for a Refresh somebody pressed counts (the panel's "busy").
    """
    if not status or status.get("state") not in WAITING_STATES:
        return False
    if requested_only and not status.get("requested"):
        return False
    try:
        until = datetime.fromisoformat(status["until"])
    except (KeyError, TypeError, ValueError):
        return False
    return (now or timezone.now()) < until


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
    """Pull this vehicle now (the Refresh button): its row is marked requested and due at once,
    and a task is queued for it (if that message is lost, the lanes pull the due row).

    False when it cannot work (see refresh_unavailable_reason) or a Refresh is already waiting.
    A scheduled pull does not count: the user asked for data now.
    """
    if refresh_unavailable_reason(vehicle):
        return False
    now = timezone.now()
    row = schedule.row_for(vehicle.pk)
    pressed = (
        TelemetryPull.objects.filter(pk=row.pk)
        .filter(Q(requested_at__isnull=True) | Q(requested_at__lte=now - REFRESH_WAIT))
        .update(requested_at=now)
    )
    if not pressed:
        return False
    schedule.make_due(vehicle.pk)
    not_queued = partial(_not_queued, row.pk, now)
    tasks.pull_vehicle_telemetry.delay_on_commit(vehicle.pk, requested=True, on_error=not_queued)
    return True


def _not_queued(row_pk: int, pressed_at: datetime) -> None:
    # The row stays due (the lanes pull it once the broker is back); the panel says so at once.
    TelemetryPull.objects.filter(pk=row_pk, requested_at=pressed_at).update(
        requested_at=None,
        outcome=TelemetryPull.Outcome.FAILED,
        outcome_message=REFRESH_NOT_QUEUED,
        outcome_at=timezone.now(),
        outcome_requested=True,
    )


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


def pull_vehicle(vehicle_id: int, *, requested: bool = False) -> PullOutcome:
    """Pull one vehicle at once, outside the schedule's lanes, and record it on its row.

    ``requested``: the pull answers a Refresh (the panel shows its result).
    """
    started = timezone.now()
    outcome = fetch(vehicle_id)
    if Vehicle.objects.filter(pk=vehicle_id).exists():
        row = schedule.row_for(vehicle_id)
        if requested:
            TelemetryPull.objects.filter(pk=row.pk, requested_at__isnull=True).update(
                requested_at=started
            )
        schedule.finish(row, outcome, started=started)
    return outcome


def fetch(vehicle_id: int) -> PullOutcome:
    """GET /v1/vehicle-data/autoapi-13/{vin} for one approved vehicle and store the snapshot."""
    vehicle = Vehicle.objects.select_related("clearance__credential").filter(pk=vehicle_id).first()
    if vehicle is None:
        return PullOutcome(False, "The vehicle no longer exists.")
    clearance = getattr(vehicle, "clearance", None)
    if clearance is None or clearance.credential is None:
        return PullOutcome(False, "This vehicle has no clearance with High Mobility yet.")
    if not statuses.data_flows(clearance.status):
        return PullOutcome(
            False,
            f"Telemetry is available once the clearance is approved "
            f"(it is {clearance.status} now).",
        )
    return _pull(vehicle, clearance.credential, hm)


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
        retry_after = getattr(exc, "retry_after", None)
        return PullOutcome(
            False, explain_hm_error(exc), retryable=retryable, retry_after=retry_after
        )
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
