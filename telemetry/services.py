"""Telemetry writes: store snapshots (pull and stream), pull one vehicle, prune old history."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from telemetry.models import TelemetrySnapshot
from telemetry.mqtt import PermanentMessageError
from telemetry.parse import ParsedTelemetry, TelemetryParseError, parse_json, parse_rest
from vehicles.models import Vehicle

if TYPE_CHECKING:
    from clearance.models import Credential

logger = logging.getLogger(__name__)

APPROVED = "approved"
# HM timestamps a little in the future (clock skew) are accepted; beyond that we use our clock.
FUTURE_TOLERANCE = timedelta(minutes=5)

# fields_meta keys that mark a snapshot whose captured_at is our receive time, not HM's.
CAPTURED_AT_SOURCE = "captured_at_source"
CAPTURED_AT_REASON = "captured_at_reason"
RECEIVE_TIME = "receive_time"
NO_HM_TIMESTAMP = "no_hm_timestamp"
HM_TIMESTAMP_IN_FUTURE = "hm_timestamp_in_future"


# --------------------------------------------------------------------------------------------
# Storing


def _captured_at(parsed: ParsedTelemetry, received_at: datetime) -> tuple[datetime, str]:
    """HM's newest timestamp, or our receive time and why ("" when HM's time is used)."""
    newest = parsed.latest_timestamp
    if newest is None:
        return received_at, NO_HM_TIMESTAMP
    if newest > received_at + FUTURE_TOLERANCE:
        return received_at, HM_TIMESTAMP_IN_FUTURE
    return newest, ""


def captured_at_is_receive_time(snapshot: TelemetrySnapshot) -> bool:
    """True when HM sent no usable timestamp, so captured_at is when we received the data."""
    return (snapshot.fields_meta or {}).get(CAPTURED_AT_SOURCE) == RECEIVE_TIME


def _value(reading: Any) -> Any:
    return reading.value if reading is not None else None


def record_snapshot(
    vehicle: Vehicle,
    parsed: ParsedTelemetry,
    *,
    source: str,
    received_at: datetime | None = None,
) -> TelemetrySnapshot | None:
    """Save one parsed payload.

    Returns None for a stream message stored before (same message_id), and the existing row for
    a pull that brought exactly the same data with the same HM timestamps.
    """
    received_at = received_at or timezone.now()
    message_id = (parsed.message_id or "")[:100]
    if (
        message_id
        and TelemetrySnapshot.objects.filter(vehicle=vehicle, message_id=message_id).exists()
    ):
        return None
    captured_at, receive_time_reason = _captured_at(parsed, received_at)
    if not message_id:
        # HM answers a pull with its latest cached state: a parked car gives the same answer
        # (same timestamps) again and again. Keep one row for it, not one per pull. Without HM
        # timestamps captured_at is our receive time, so the same data is compared alone.
        latest = (
            TelemetrySnapshot.objects.filter(vehicle=vehicle)
            .order_by("-captured_at", "-pk")
            .only("pk", "captured_at", "data", "fields_meta")
            .first()
        )
        same_time = latest is not None and (
            latest.captured_at == captured_at
            or (
                receive_time_reason == NO_HM_TIMESTAMP
                and (latest.fields_meta or {}).get(CAPTURED_AT_REASON) == NO_HM_TIMESTAMP
            )
        )
        if latest and same_time and latest.data == parsed.raw:
            return latest
    fields_meta = parsed.fields_json()
    if receive_time_reason:
        fields_meta[CAPTURED_AT_SOURCE] = RECEIVE_TIME
        fields_meta[CAPTURED_AT_REASON] = receive_time_reason
    coords = _value(parsed.coordinates)
    snapshot = TelemetrySnapshot(
        vehicle=vehicle,
        captured_at=captured_at,
        received_at=received_at,
        source=source,
        message_id=message_id,
        data=parsed.raw,
        fields_meta=fields_meta,
        odometer_km=_value(parsed.odometer_km),
        fuel_level=_value(parsed.fuel_level),
        battery_level=_value(parsed.battery_level),
        estimated_range_km=_value(parsed.estimated_range_km),
        charging_state=(_value(parsed.charging_state) or "")[:40],
        latitude=coords.latitude if coords else None,
        longitude=coords.longitude if coords else None,
        heading_deg=_value(parsed.heading_deg),
        speed_kmh=_value(parsed.speed_kmh),
        ignition=(_value(parsed.ignition) or "")[:20],
        doors_locked=_value(parsed.doors_locked),
    )
    try:
        with transaction.atomic():
            snapshot.save()
            # "Last seen" for the fleet list: only ever moves forward; one UPDATE, no read.
            # Data without any HM time may be old, so it does not make the car "seen" now.
            if receive_time_reason != NO_HM_TIMESTAMP:
                Vehicle.objects.filter(pk=vehicle.pk).filter(
                    Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=snapshot.captured_at)
                ).update(last_seen_at=snapshot.captured_at)
    except IntegrityError:
        if message_id:  # a concurrent consumer stored the same message first
            return None
        raise
    return snapshot


def ingest_stream_message(
    payload: bytes | str, *, credential: Credential, received_at: datetime | None = None
) -> TelemetrySnapshot | None:
    """Store one MQTT message for a vehicle of the credential's organization.

    Raises PermanentMessageError for messages that can never be stored (not JSON, no
    message_id, a VIN the organization does not have, no or another application id). The
    application id is what tells this organization's messages from another's for the same VIN,
    so a credential without one stores nothing.
    """
    app_id = (credential.app_id or "").strip()
    if not app_id:
        raise PermanentMessageError(
            f"credential {credential.name!r} has no High Mobility application id, so we cannot "
            "tell whether a message belongs to this organization"
        )
    try:
        parsed = parse_json(payload)
    except TelemetryParseError as exc:
        raise PermanentMessageError(str(exc)) from exc
    if not parsed.message_id:
        raise PermanentMessageError("the message has no message_id")
    if not parsed.vin:
        raise PermanentMessageError("the message has no VIN")
    if not parsed.application_id:
        raise PermanentMessageError("the message has no application_id, so its owner is unknown")
    if parsed.application_id.strip().lower() != app_id.lower():
        raise PermanentMessageError(f"message for another application ({parsed.application_id})")
    vehicle = Vehicle.objects.filter(
        organization_id=credential.organization_id, vin=parsed.vin.strip().upper()
    ).first()
    if vehicle is None:
        raise PermanentMessageError(f"VIN {parsed.vin} is not in this organization's fleet")
    return record_snapshot(
        vehicle, parsed, source=TelemetrySnapshot.Source.STREAM, received_at=received_at
    )


# --------------------------------------------------------------------------------------------
# Pulling (REST)


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


def refresh_unavailable_reason(vehicle: Vehicle) -> str:
    """Why the Refresh button cannot work for this vehicle, in words ("" when it can).

    Only an approved clearance with a credential can give data; anything else can only fail.
    """
    from clearance.models import ClearanceStatus

    clearance = getattr(vehicle, "clearance", None)
    if clearance is None:
        return (
            "No data yet: data access has not been requested from High Mobility for this vehicle."
        )
    status = clearance.status
    if status == APPROVED:
        if clearance.credential_id is None:
            return (
                "The clearance is approved but linked to no High Mobility credential, so no "
                "data can be fetched. An owner can fix this on the Credentials page."
            )
        return ""
    if status in (ClearanceStatus.QUEUED, ClearanceStatus.PENDING):
        return f"No data yet: data arrives once the clearance is approved (it is {status} now)."
    if status in (ClearanceStatus.REVOKING, ClearanceStatus.REVOKED):
        being = "has been" if status == ClearanceStatus.REVOKED else "is being"
        return (
            f"Data access {being} revoked, so no new data arrives; anything shown below was "
            "received before."
        )
    if status == ClearanceStatus.REJECTED:
        return "The carmaker rejected the clearance, so High Mobility shares no data for it."
    if status in (ClearanceStatus.CANCELING, ClearanceStatus.CANCELED):
        return f"The clearance request was canceled (it is {status}), so no data arrives."
    return f"No new data: data arrives once the clearance is approved (it is {status} now)."


def request_refresh(vehicle: Vehicle) -> bool:
    """Queue a pull for one vehicle (the Refresh button).

    False when it cannot work (see refresh_unavailable_reason) or a Refresh is already queued.
    A scheduled pull does not count: the user asked for data now.
    """
    from telemetry.tasks import pull_vehicle_telemetry

    if refresh_unavailable_reason(vehicle):
        return False
    if pull_is_waiting(get_pull_status(vehicle), requested_only=True):
        return False
    set_pull_status(vehicle, "queued", "Asking High Mobility for fresh data…", requested=True)
    pull_vehicle_telemetry.delay_on_commit(vehicle.pk, requested=True)
    return True


def explain_hm_error(exc: Exception) -> str:
    """HM's vehicle-data errors in words a fleet manager understands (PROTOCOL.md §4)."""
    from clearance.hm import errors as hm

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
    from clearance.connect import hm_client_for

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
    from clearance.hm import errors as hm

    vehicle = Vehicle.objects.select_related("clearance__credential").filter(pk=vehicle_id).first()
    if vehicle is None:
        return PullOutcome(False, "The vehicle no longer exists.")
    clearance = getattr(vehicle, "clearance", None)
    if clearance is None or clearance.credential is None:
        outcome = PullOutcome(False, "This vehicle has no clearance with High Mobility yet.")
    elif clearance.status != APPROVED:
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
    except ValueError as exc:  # clearance.connect.CredentialIncomplete
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
        Vehicle.objects.filter(clearance__status=APPROVED, clearance__credential__isnull=False)
        .order_by("pk")
        .values_list("pk", "public_id")
    )


# --------------------------------------------------------------------------------------------
# Retention


def prune_snapshots(
    *, retention_days: int | None = None, batch_size: int | None = None, max_batches: int = 1000
) -> int:
    """Delete snapshots older than the retention period in batches (short transactions)."""
    days = retention_days or settings.TELEMETRY_RETENTION_DAYS
    size = batch_size or settings.TELEMETRY_PRUNE_BATCH_SIZE
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    for _ in range(max_batches):
        ids = list(
            TelemetrySnapshot.objects.filter(captured_at__lt=cutoff)
            .order_by("captured_at")
            .values_list("pk", flat=True)[:size]
        )
        if not ids:
            break
        count, _ = TelemetrySnapshot.objects.filter(pk__in=ids).delete()
        deleted += count
    if deleted:
        logger.info("Pruned %s telemetry snapshots older than %s days", deleted, days)
    return deleted
