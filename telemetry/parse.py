"""Parse High Mobility Auto API level 13 JSON into one normalised structure.

Two input shapes are accepted (PROTOCOL.md §4 and §6):

* the REST answer of ``GET /v1/vehicle-data/autoapi-13/{vin}``: top-level ``request_id``,
  ``vin``, ``brand`` and one object per capability, where a property is either
  ``{data, timestamp, failure?}`` or a list of such objects;
* the MQTT v2 envelope ``{version, application_id, message_id, vin, data}`` where every
  property inside ``data`` is a list (the ``version`` is not hard-checked: production sends 3).
  MQTT v1 messages (``{version: 1, capability, property, data}``) parse the same way.

Every normalised field keeps HM's own timestamp and any ``failure``. The raw capability data is
kept untouched in :attr:`ParsedTelemetry.raw`. Pure Python: no Django imports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from telemetry.readings import (
    ALL_DOORS,
    DOOR_ORDER,
    Coordinates,
    DoorState,
    Reading,
    coordinates,
    failure_of,
    first,
    lock_state,
    parse_timestamp,
    percentage,
    reading,
    sorted_entries,
    str_or_none,
    string,
    to_degrees,
    to_km,
    to_kmh,
)
from untrusted import UntrustedJsonError
from untrusted import parse_json as parse_untrusted_json

_TOP_LEVEL_META = {"request_id", "vin", "brand"}


class TelemetryParseError(ValueError):
    """The payload is not Auto API JSON at all (not an object, no capabilities)."""


@dataclass(slots=True)
class ParsedTelemetry:
    raw: dict[str, Any]
    vin: str | None = None
    brand: str | None = None
    request_id: str | None = None
    message_id: str | None = None
    version: int | float | None = None
    application_id: str | None = None
    odometer_km: Reading[float] | None = None
    fuel_level: Reading[float] | None = None
    battery_level: Reading[float] | None = None
    estimated_range_km: Reading[float] | None = None
    charging_state: Reading[str] | None = None
    coordinates: Reading[Coordinates] | None = None
    heading_deg: Reading[float] | None = None
    speed_kmh: Reading[float] | None = None
    ignition: Reading[str] | None = None
    doors_locked: Reading[bool] | None = None
    doors: list[DoorState] = field(default_factory=list)
    # Every coordinates entry of the payload, oldest first (a stream message can carry a track).
    track: list[Reading[Coordinates]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    SCALAR_FIELDS = (
        "odometer_km",
        "fuel_level",
        "battery_level",
        "estimated_range_km",
        "charging_state",
        "coordinates",
        "heading_deg",
        "speed_kmh",
        "ignition",
        "doors_locked",
    )

    @property
    def latest_timestamp(self) -> datetime | None:
        """The newest HM timestamp among the normalised fields (None when HM sent none)."""
        stamps = [r.timestamp for r in self._readings() if r.timestamp is not None]
        stamps += [s for d in self.doors for s in (d.lock_timestamp, d.position_timestamp) if s]
        return max(stamps) if stamps else None

    def _readings(self) -> Iterable[Reading[Any]]:
        for name in self.SCALAR_FIELDS:
            reading = getattr(self, name)
            if reading is not None:
                yield reading

    def fields_json(self) -> dict[str, Any]:
        """JSON-ready fields: ``{name: {value, timestamp, failure}}`` plus doors and track."""
        out: dict[str, Any] = {}
        for name in self.SCALAR_FIELDS:
            reading = getattr(self, name)
            if reading is not None:
                out[name] = _reading_json(reading)
        if self.doors:
            out["doors"] = [
                {
                    "location": d.location,
                    "locked": d.locked,
                    "lock_timestamp": _iso(d.lock_timestamp),
                    "lock_failure": d.lock_failure.as_json() if d.lock_failure else None,
                    "open": d.open,
                    "position_timestamp": _iso(d.position_timestamp),
                    "position_failure": (
                        d.position_failure.as_json() if d.position_failure else None
                    ),
                }
                for d in self.doors
            ]
        if len(self.track) > 1:
            out["track"] = [_reading_json(r) for r in self.track if r.value is not None]
        if self.problems:
            out["problems"] = list(self.problems)
        return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _reading_json(reading: Reading[Any]) -> dict[str, Any]:
    value = reading.value
    if isinstance(value, Coordinates):
        value = {"latitude": value.latitude, "longitude": value.longitude}
    return {
        "value": value,
        "timestamp": _iso(reading.timestamp),
        "failure": reading.failure.as_json() if reading.failure else None,
    }


# --------------------------------------------------------------------------------------------
# Entry points


def parse_json(payload: bytes | str) -> ParsedTelemetry:
    """Parse a JSON document of either shape (REST answer or MQTT envelope)."""
    try:
        document = parse_untrusted_json(payload)
    except UntrustedJsonError as exc:
        raise TelemetryParseError(f"not usable JSON: {exc}") from exc
    if isinstance(document, dict) and "message_id" in document and "data" in document:
        return parse_stream(document)
    return parse_rest(document)


def parse_rest(payload: Mapping[str, Any]) -> ParsedTelemetry:
    """Parse the REST answer of the Vehicle Data API (properties are objects or lists)."""
    if not isinstance(payload, Mapping):
        raise TelemetryParseError("the vehicle data is not a JSON object")
    capabilities = {k: v for k, v in payload.items() if k not in _TOP_LEVEL_META}
    parsed = _parse_capabilities(capabilities)
    parsed.vin = str_or_none(payload.get("vin"))
    parsed.brand = str_or_none(payload.get("brand"))
    parsed.request_id = str_or_none(payload.get("request_id"))
    return parsed


def parse_stream(envelope: Mapping[str, Any]) -> ParsedTelemetry:
    """Parse an MQTT message envelope (v2: every property is a list; v1 works too)."""
    if not isinstance(envelope, Mapping):
        raise TelemetryParseError("the stream message is not a JSON object")
    data = envelope.get("data")
    if not isinstance(data, Mapping):
        raise TelemetryParseError("the stream message has no 'data' object")
    parsed = _parse_capabilities(dict(data))
    parsed.vin = str_or_none(envelope.get("vin"))
    parsed.message_id = str_or_none(envelope.get("message_id"))
    parsed.application_id = str_or_none(envelope.get("application_id"))
    version = envelope.get("version")
    parsed.version = version if isinstance(version, int | float) else None
    return parsed


def _parse_capabilities(capabilities: dict[str, Any]) -> ParsedTelemetry:
    if not capabilities:
        raise TelemetryParseError("the payload carries no capabilities")
    parsed = ParsedTelemetry(raw=capabilities)
    problems = parsed.problems

    def cap(name: str) -> Mapping[str, Any]:
        value = capabilities.get(name)
        return value if isinstance(value, Mapping) else {}

    def read[V](
        capability: str, prop: str, convert: Callable[[Any], V | None]
    ) -> Reading[V] | None:
        return reading(cap(capability).get(prop), convert, problems, f"{capability}.{prop}")

    diagnostics = "diagnostics"
    parsed.odometer_km = first(
        read(diagnostics, "odometer", to_km),
        read(diagnostics, "mileage", to_km),  # deprecated
        read(diagnostics, "mileage_meters", to_km),  # deprecated
    )
    parsed.fuel_level = read(diagnostics, "fuel_level", percentage)
    parsed.battery_level = first(
        read("charging", "battery_level", percentage),
        read(diagnostics, "battery_level", percentage),
    )
    parsed.estimated_range_km = first(
        read(diagnostics, "estimated_range", to_km),
        read("charging", "estimated_range", to_km),
        read(diagnostics, "estimated_primary_powertrain_range", to_km),
    )
    parsed.charging_state = read("charging", "status", string)
    parsed.speed_kmh = first(
        read(diagnostics, "speed", to_kmh), read(diagnostics, "wheel_based_speed", to_kmh)
    )
    parsed.ignition = first(read("ignition", "state", string), read("ignition", "status", string))
    parsed.coordinates = read("vehicle_location", "coordinates", coordinates)
    parsed.heading_deg = read("vehicle_location", "heading", to_degrees)
    parsed.track = _track(cap("vehicle_location").get("coordinates"), problems)
    _parse_doors(parsed, cap("doors"))
    return parsed


def _track(prop: Any, problems: list[str]) -> list[Reading[Coordinates]]:
    out: list[Reading[Coordinates]] = []
    for entry in sorted_entries(prop):
        if "data" not in entry:
            continue
        try:
            coords = coordinates(entry["data"])
        except ValueError:
            continue  # already reported by the single-value reading
        out.append(Reading(coords, parse_timestamp(entry.get("timestamp")), failure_of(entry)))
    return out


def _position(data: Any) -> bool | None:
    if data == "open":
        return True
    if data == "closed":
        return False
    raise ValueError(f"unknown position {data!r}")


def _door_property(
    prop: Any,
    name: str,
    key: str,
    convert: Callable[[Any], bool | None],
    fields: tuple[str, str, str],
    by_location: dict[str, dict[str, Any]],
    problems: list[str],
) -> None:
    """Fold one per-door property (``locks`` or ``positions``) into ``by_location``.

    ``fields`` names the value, timestamp and failure slots. Entries are read oldest first, so
    the newest value wins and a failure stays only when no newer value follows it. A failure
    that names no door is kept under ``all``.
    """
    value_field, stamp_field, failure_field = fields
    for entry in sorted_entries(prop):
        data = entry.get("data")
        failure = failure_of(entry)
        location = data.get("location") if isinstance(data, Mapping) else None
        if not isinstance(location, str) or not location:
            if failure is None:
                continue
            location = ALL_DOORS
        value: bool | None = None
        if isinstance(data, Mapping) and key in data:
            try:
                value = convert(data[key])
            except ValueError as exc:
                problems.append(f"doors.{name}: {exc}")
                if failure is None:
                    continue
        stamp = parse_timestamp(entry.get("timestamp"))
        slot = by_location.setdefault(location, {})
        if value is not None:
            slot.update({value_field: value, stamp_field: stamp, failure_field: failure})
        elif failure is not None:
            slot[failure_field] = failure
            if slot.get(value_field) is None:
                slot[stamp_field] = stamp


def _parse_doors(parsed: ParsedTelemetry, doors: Mapping[str, Any]) -> None:
    problems = parsed.problems
    by_location: dict[str, dict[str, Any]] = {}
    _door_property(
        doors.get("locks"),
        "locks",
        "lock_state",
        lock_state,
        ("locked", "lock_timestamp", "lock_failure"),
        by_location,
        problems,
    )
    _door_property(
        doors.get("positions"),
        "positions",
        "position",
        _position,
        ("open", "position_timestamp", "position_failure"),
        by_location,
        problems,
    )
    parsed.doors = [
        DoorState(location=loc, **by_location[loc])
        for loc in sorted(
            by_location,
            key=lambda x: (DOOR_ORDER.index(x) if x in DOOR_ORDER else len(DOOR_ORDER), x),
        )
    ]
    overall = reading(doors.get("locks_state"), lock_state, problems, "doors.locks_state")
    if overall is None or overall.value is None:
        per_door = [d for d in parsed.doors if d.locked is not None and d.location != ALL_DOORS]
        everywhere = next((d for d in parsed.doors if d.location == ALL_DOORS), None)
        if per_door:
            stamps = [d.lock_timestamp for d in per_door if d.lock_timestamp]
            overall = Reading(
                value=all(d.locked for d in per_door),
                timestamp=min(stamps) if stamps else None,
                failure=overall.failure if overall else None,
            )
        elif overall is None and everywhere is not None and everywhere.lock_failure:
            # No lock state at all, only HM's failure for the locks: show that failure.
            overall = Reading(
                value=None, timestamp=everywhere.lock_timestamp, failure=everywhere.lock_failure
            )
    parsed.doors_locked = overall
