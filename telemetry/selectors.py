"""Telemetry reads for the vehicle panel, the fleet map and the fleet overview."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from clearance import statuses
from organizations.models import Organization
from telemetry.models import Place, TelemetrySnapshot
from telemetry.readings import DOOR_ORDER, FAILURE_REASON_WORDS, parse_timestamp
from vehicles.models import Vehicle

# How many recent snapshots are merged to find the newest value of every field (a stream
# message may carry only a few properties).
MERGE_WINDOW = 50

FIELD_LABELS: dict[str, str] = {
    "odometer_km": "Odometer",
    "fuel_level": "Fuel level",
    "battery_level": "Battery level",
    "estimated_range_km": "Estimated range",
    "charging_state": "Charging",
    "speed_kmh": "Speed",
    "ignition": "Ignition",
    "doors_locked": "Doors",
    "coordinates": "Position",
    "heading_deg": "Heading",
}


# Every ignition state of the Auto API L13 schema (misc/custom_types.schema.json#ignition_state)
# in a fleet manager's words. A state HM adds later is shown as it came.
IGNITION_WORDS: dict[str, str] = {
    "lock": "Off, steering locked",
    "off": "Off",
    "accessory": "Accessories on, engine off",
    "on": "On",
    "start": "Engine starting",
}


@dataclass(frozen=True, slots=True)
class FieldValue:
    name: str
    label: str
    display: str
    timestamp: datetime | None
    stale: bool
    failure: str  # HM's failure in words, "" when none

    @property
    def has_value(self) -> bool:
        return self.display != "—"


def last_seen_map(vehicle_ids: Iterable[int]) -> dict[int, datetime]:
    """{vehicle id: newest HM timestamp} in one query (from Vehicle.last_seen_at)."""
    rows = Vehicle.objects.filter(pk__in=list(vehicle_ids), last_seen_at__isnull=False)
    return {pk: seen for pk, seen in rows.values_list("pk", "last_seen_at").iterator() if seen}


def is_stale(timestamp: datetime | None, now: datetime | None = None) -> bool:
    if timestamp is None:
        return True
    now = now or timezone.now()
    return (now - timestamp).total_seconds() > settings.TELEMETRY_STALE_AFTER_SECONDS


def _display(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if name in ("fuel_level", "battery_level"):
        return f"{value * 100:.0f} %"
    if name in ("odometer_km", "estimated_range_km"):
        return f"{value:,.0f} km"
    if name == "speed_kmh":
        return f"{value:.0f} km/h"
    if name == "heading_deg":
        return f"{value:.0f}°"
    if name == "doors_locked":
        return "Locked" if value else "Unlocked"
    if name == "ignition":
        return IGNITION_WORDS.get(str(value).strip().lower(), str(value))
    if name == "coordinates" and isinstance(value, dict):
        return f"{value['latitude']:.5f}, {value['longitude']:.5f}"
    return str(value).replace("_", " ").capitalize()


def _failure_words(failure: dict[str, str] | None) -> str:
    if not failure:
        return ""
    reason = failure.get("reason", "unknown")
    words = FAILURE_REASON_WORDS.get(reason, reason.replace("_", " "))
    description = failure.get("description") or ""
    return f"{words[:1].upper()}{words[1:]}" + (f" ({description})" if description else "")


def recent_snapshots(vehicle: Vehicle, limit: int = MERGE_WINDOW) -> list[TelemetrySnapshot]:
    return list(
        TelemetrySnapshot.objects.filter(vehicle=vehicle)
        .order_by("-captured_at", "-pk")
        .defer("data")[:limit]
    )


def _newer(stamp: datetime | None, than: datetime | None) -> bool:
    return stamp is not None and (than is None or stamp > than)


def latest_fields(
    snapshots: list[TelemetrySnapshot], now: datetime | None = None
) -> list[FieldValue]:
    """The newest value of every field across recent snapshots, each with its own timestamp.

    A newer HM failure does not hide the last known value: both are shown, the value with its
    own (older, maybe stale) timestamp.
    """
    now = now or timezone.now()
    values: dict[str, tuple[datetime | None, Any]] = {}
    failures: dict[str, tuple[datetime | None, dict[str, str]]] = {}
    for snap in snapshots:  # newest snapshot first
        for name, entry in (snap.fields_meta or {}).items():
            if name not in FIELD_LABELS or not isinstance(entry, dict):
                continue
            stamp = parse_timestamp(entry.get("timestamp"))
            if entry.get("value") is not None and (
                name not in values or _newer(stamp, values[name][0])
            ):
                values[name] = (stamp, entry["value"])
            if entry.get("failure") and (name not in failures or _newer(stamp, failures[name][0])):
                failures[name] = (stamp, entry["failure"])
    out = []
    for name, label in FIELD_LABELS.items():
        if name not in values and name not in failures:
            continue
        stamp, value = values.get(name, (None, None))
        failure = ""
        if name in failures:
            f_stamp, f_entry = failures[name]
            if name not in values or stamp is None or f_stamp is None or f_stamp >= stamp:
                failure = _failure_words(f_entry)
                if name not in values:
                    stamp = f_stamp
        out.append(
            FieldValue(
                name=name,
                label=label,
                display=_display(name, value),
                timestamp=stamp,
                stale=is_stale(stamp, now),
                failure=failure,
            )
        )
    return out


_DOOR_ASPECTS = (
    ("locked", "lock_timestamp", "lock_failure"),
    ("open", "position_timestamp", "position_failure"),
)


def latest_doors(snapshots: list[TelemetrySnapshot]) -> list[dict[str, Any]]:
    """Every door's newest lock and position across recent snapshots, failures in words.

    As for the other fields, a newer HM failure does not hide the last known value: both are
    shown, the value with its own (older) timestamp.
    """
    merged: dict[str, dict[str, Any]] = {}
    for snap in snapshots:  # newest snapshot first
        for door in (snap.fields_meta or {}).get("doors") or []:
            if not isinstance(door, dict) or not isinstance(door.get("location"), str):
                continue
            slot = merged.setdefault(door["location"], {})
            for value_key, stamp_key, failure_key in _DOOR_ASPECTS:
                stamp = parse_timestamp(door.get(stamp_key))
                value = door.get(value_key)
                if value is not None and (
                    value_key not in slot or _newer(stamp, slot[value_key][0])
                ):
                    slot[value_key] = (stamp, value)
                failure = door.get(failure_key)
                if failure and (failure_key not in slot or _newer(stamp, slot[failure_key][0])):
                    slot[failure_key] = (stamp, failure)
    out = []
    order = {location: index for index, location in enumerate(DOOR_ORDER)}
    for location in sorted(merged, key=lambda x: (order.get(x, len(order)), x)):
        slot = merged[location]
        row: dict[str, Any] = {
            "location": location,
            "label": location.replace("_", " ").capitalize(),
        }
        for value_key, stamp_key, failure_key in _DOOR_ASPECTS:
            stamp, value = slot.get(value_key, (None, None))
            failure = ""
            if failure_key in slot:
                f_stamp, f_entry = slot[failure_key]
                if value is None or stamp is None or f_stamp is None or f_stamp >= stamp:
                    failure = _failure_words(f_entry)
                    if value is None:
                        stamp = f_stamp
            row.update({value_key: value, stamp_key: stamp, failure_key: failure})
        out.append(row)
    return out


def track(vehicle: Vehicle, limit: int | None = None) -> list[dict[str, Any]]:
    """The last positions, oldest first: [{lat, lon, at (ISO), when (shown)}]."""
    rows = list(
        TelemetrySnapshot.objects.filter(vehicle=vehicle, latitude__isnull=False)
        .order_by("-captured_at")
        .values("latitude", "longitude", "captured_at")[: limit or settings.TELEMETRY_TRACK_POINTS]
    )
    rows.reverse()
    return [
        {
            "lat": r["latitude"],
            "lon": r["longitude"],
            "at": r["captured_at"].isoformat(),
            # The portal's date format, rendered here: the browser's locale would make it US-style.
            "when": timezone.localtime(r["captured_at"]).strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        for r in rows
    ]


def places_of(organization: Organization) -> list[Any]:
    """The organization's named places (few: read once per page, matched in Python)."""
    return list(Place.objects.filter(organization=organization).order_by("name"))


def place_json(places: list[Any]) -> list[dict[str, Any]]:
    return [
        {"name": p.name, "lat": p.latitude, "lon": p.longitude, "radius": p.radius_m}
        for p in places
    ]


# The fleet map's data: one row per positioned vehicle, as compact arrays (see fleet_map_rows).
MAP_FIELDS: tuple[str, ...] = (
    "public_id",
    "vin",
    "nickname",
    "license_plate",
    "clearance__status",
    "latest_telemetry__latitude",
    "latest_telemetry__longitude",
    "latest_telemetry__position_at",
    "latest_telemetry__battery_level",
    "latest_telemetry__fuel_level",
    "last_seen_at",
)


def fleet_map_rows(organization: Organization, *, approved_only: bool) -> QuerySet:
    """Every positioned vehicle of the organization (approved ones only, by default) with its
    last position, energy level and last report: ONE query (a join on LatestTelemetry)."""
    rows = Vehicle.objects.filter(
        organization=organization, latest_telemetry__latitude__isnull=False
    )
    if approved_only:
        rows = rows.filter(clearance__status__in=statuses.DATA_FLOWS)
    return rows.order_by("vin").values_list(*MAP_FIELDS)
