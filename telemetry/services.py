"""Telemetry writes: store snapshots (from pulls and the stream), prune old history.

Pulling one vehicle from HM and the Refresh button are in ``telemetry.pull``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from clearance.models import Credential
from telemetry.models import TelemetrySnapshot
from telemetry.mqtt import PermanentMessageError
from telemetry.parse import ParsedTelemetry, TelemetryParseError, parse_json
from telemetry.selectors import FIELD_LABELS
from vehicles import events as fleet_events
from vehicles.models import Vehicle

logger = logging.getLogger(__name__)

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


def recorded_event(
    vehicle_id: int, snapshot: TelemetrySnapshot, parsed: ParsedTelemetry
) -> fleet_events.TelemetryRecorded:
    """What the alert rules need of a stored snapshot: levels, reported fields, failures."""
    readings = {name: getattr(parsed, name) for name in ParsedTelemetry.SCALAR_FIELDS}
    return fleet_events.TelemetryRecorded(
        vehicle_id=vehicle_id,
        captured_at=snapshot.captured_at,
        battery_level=snapshot.battery_level,
        fuel_level=snapshot.fuel_level,
        reported=frozenset(
            name for name, reading in readings.items() if reading and reading.has_value
        ),
        failures={
            name: f"{FIELD_LABELS.get(name, name)}: {reading.failure.in_words}"
            for name, reading in readings.items()
            if reading and reading.failure
        },
    )


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
                newest = (
                    Vehicle.objects.filter(pk=vehicle.pk)
                    .filter(Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=snapshot.captured_at))
                    .update(last_seen_at=snapshot.captured_at)
                )
                if newest:  # older data arriving late never fires or clears an alert
                    fleet_events.publish([recorded_event(vehicle.pk, snapshot, parsed)])
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
