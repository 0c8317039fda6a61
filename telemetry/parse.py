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

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Conversion factors to kilometres for every Auto API length unit (misc/units.schema.json).
LENGTH_TO_KM: dict[str, float] = {
    "meters": 0.001,
    "millimeters": 0.000001,
    "centimeters": 0.00001,
    "decimeters": 0.0001,
    "kilometers": 1.0,
    "megameters": 1000.0,
    "inches": 0.0000254,
    "feet": 0.0003048,
    "yards": 0.0009144,
    "miles": 1.609344,
    "scandinavian_miles": 10.0,
    "nautical_miles": 1.852,
}
SPEED_TO_KMH: dict[str, float] = {
    "meters_per_second": 3.6,
    "kilometers_per_hour": 1.0,
    "miles_per_hour": 1.609344,
    "knots": 1.852,
}
ANGLE_TO_DEGREES: dict[str, float] = {
    "degrees": 1.0,
    "radians": 180.0 / math.pi,
    "revolutions": 360.0,
}

# Envelope keys that are not capabilities.
_TOP_LEVEL_META = {"request_id", "vin", "brand"}

# Human words for HM's failure reasons (custom_types.schema.json#/$defs/failure).
FAILURE_REASON_WORDS: dict[str, str] = {
    "rate_limit": "the carmaker's rate limit was reached",
    "execution_timeout": "the car did not answer in time",
    "format_error": "the carmaker sent data in an unexpected format",
    "unauthorised": "access to this value is not permitted",
    "unknown": "the carmaker reported an unknown error",
    "pending": "the value is not available yet",
    "oem_error": "the carmaker reported an error",
    "privacy_mode_active": "the driver has turned on privacy mode",
}


class TelemetryParseError(ValueError):
    """The payload is not Auto API JSON at all (not an object, no capabilities)."""


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    description: str

    @property
    def in_words(self) -> str:
        words = FAILURE_REASON_WORDS.get(self.reason, self.reason.replace("_", " "))
        if self.description and self.description.lower() not in words.lower():
            return f"{words[:1].upper()}{words[1:]} ({self.description})"
        return f"{words[:1].upper()}{words[1:]}"

    def as_json(self) -> dict[str, str]:
        return {"reason": self.reason, "description": self.description}


@dataclass(frozen=True, slots=True)
class Reading[T]:
    """One normalised value with HM's timestamp; ``failure`` is the newest failure, if any."""

    value: T | None
    timestamp: datetime | None
    failure: Failure | None = None

    @property
    def has_value(self) -> bool:
        return self.value is not None


@dataclass(frozen=True, slots=True)
class Coordinates:
    latitude: float
    longitude: float


# HM's door locations, in display order ("all" also takes failures that name no door).
DOOR_ORDER = ("front_left", "front_right", "rear_left", "rear_right", "all")
ALL_DOORS = "all"


@dataclass(frozen=True, slots=True)
class DoorState:
    """One door's lock and position; each with HM's timestamp and the newest failure, if any.

    Like :class:`Reading`: the timestamp is the value's, or the failure's when there is no
    value; a failure is kept only when it is not older than the value.
    """

    location: str
    locked: bool | None = None
    lock_timestamp: datetime | None = None
    open: bool | None = None
    position_timestamp: datetime | None = None
    lock_failure: Failure | None = None
    position_failure: Failure | None = None


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
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TelemetryParseError(f"not JSON: {exc}") from exc
    if isinstance(document, dict) and "message_id" in document and "data" in document:
        return parse_stream(document)
    return parse_rest(document)


def parse_rest(payload: Mapping[str, Any]) -> ParsedTelemetry:
    """Parse the REST answer of the Vehicle Data API (properties are objects or lists)."""
    if not isinstance(payload, Mapping):
        raise TelemetryParseError("the vehicle data is not a JSON object")
    capabilities = {k: v for k, v in payload.items() if k not in _TOP_LEVEL_META}
    parsed = _parse_capabilities(capabilities)
    parsed.vin = _str_or_none(payload.get("vin"))
    parsed.brand = _str_or_none(payload.get("brand"))
    parsed.request_id = _str_or_none(payload.get("request_id"))
    return parsed


def parse_stream(envelope: Mapping[str, Any]) -> ParsedTelemetry:
    """Parse an MQTT message envelope (v2: every property is a list; v1 works too)."""
    if not isinstance(envelope, Mapping):
        raise TelemetryParseError("the stream message is not a JSON object")
    data = envelope.get("data")
    if not isinstance(data, Mapping):
        raise TelemetryParseError("the stream message has no 'data' object")
    parsed = _parse_capabilities(dict(data))
    parsed.vin = _str_or_none(envelope.get("vin"))
    parsed.message_id = _str_or_none(envelope.get("message_id"))
    parsed.application_id = _str_or_none(envelope.get("application_id"))
    version = envelope.get("version")
    parsed.version = version if isinstance(version, int | float) else None
    return parsed


# --------------------------------------------------------------------------------------------
# Internals


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_timestamp(value: Any) -> datetime | None:
    """ISO 8601 from HM (``...Z``, up to nanoseconds) -> aware UTC datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python keeps microseconds; trim longer fractions (HM may send nanoseconds).
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}" if digits else head + rest
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC)


def _entries(prop: Any) -> list[Mapping[str, Any]]:
    """A property as a list of ``{data, timestamp, failure}`` entries (object or list shape)."""
    if isinstance(prop, Mapping):
        return [prop]
    if isinstance(prop, list):
        return [e for e in prop if isinstance(e, Mapping)]
    return []


def _failure(entry: Mapping[str, Any]) -> Failure | None:
    raw = entry.get("failure")
    if not isinstance(raw, Mapping):
        return None
    return Failure(
        reason=str(raw.get("reason") or "unknown"), description=str(raw.get("description") or "")
    )


def _order_key(indexed: tuple[int, Mapping[str, Any]]) -> tuple[datetime, int]:
    index, entry = indexed
    stamp = parse_timestamp(entry.get("timestamp"))
    return (stamp or datetime.min.replace(tzinfo=UTC), index)


def _sorted_entries(prop: Any) -> list[Mapping[str, Any]]:
    """Entries oldest first; entries without a timestamp count as oldest, list order breaks ties."""
    return [e for _, e in sorted(enumerate(_entries(prop)), key=_order_key)]


def _reading[T](
    prop: Any,
    convert: Callable[[Any], T | None],
    problems: list[str],
    name: str,
) -> Reading[T] | None:
    """The newest value of a single-valued property, with the newest failure if not older."""
    entries = _sorted_entries(prop)
    if not entries:
        return None
    value: T | None = None
    value_stamp: datetime | None = None
    for entry in entries:
        if "data" in entry:
            try:
                converted = convert(entry["data"])
            except (TypeError, ValueError, KeyError) as exc:
                problems.append(f"{name}: {exc}")
                continue
            if converted is not None:
                value, value_stamp = converted, parse_timestamp(entry.get("timestamp"))
    failure: Failure | None = None
    newest = entries[-1]
    newest_failure = _failure(newest)
    newest_stamp = parse_timestamp(newest.get("timestamp"))
    if newest_failure is not None and (
        value is None or value_stamp is None or newest_stamp is None or newest_stamp >= value_stamp
    ):
        failure = newest_failure
    if value is None and failure is None:
        return None
    timestamp = value_stamp if value is not None else newest_stamp
    return Reading(value=value, timestamp=timestamp, failure=failure)


def _unit_converter(table: dict[str, float], kind: str) -> Callable[[Any], float | None]:
    def convert(data: Any) -> float | None:
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a {{value, unit}} {kind}, got {type(data).__name__}")
        value, unit = data.get("value"), data.get("unit")
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"{kind} value is not a number")
        if unit not in table:
            raise ValueError(f"unknown {kind} unit {unit!r}")
        return float(value) * table[unit]

    return convert


_to_km = _unit_converter(LENGTH_TO_KM, "length")
_to_kmh = _unit_converter(SPEED_TO_KMH, "speed")
_to_degrees = _unit_converter(ANGLE_TO_DEGREES, "angle")


def _percentage(data: Any) -> float | None:
    if not isinstance(data, int | float) or isinstance(data, bool):
        raise ValueError("percentage is not a number")
    if not 0.0 <= float(data) <= 1.0:
        raise ValueError(f"percentage {data} is outside 0.0-1.0")
    return float(data)


def _string(data: Any) -> str | None:
    if not isinstance(data, str):
        raise ValueError("expected a string")
    return data


def _coordinates(data: Any) -> Coordinates | None:
    if not isinstance(data, Mapping):
        raise ValueError("coordinates are not an object")
    lat, lon = data.get("latitude"), data.get("longitude")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon)):
        raise ValueError("coordinates lack a numeric latitude/longitude")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"coordinates {lat},{lon} are out of range")
    return Coordinates(latitude=float(lat), longitude=float(lon))


def _lock_state(data: Any) -> bool | None:
    if data == "locked":
        return True
    if data == "unlocked":
        return False
    raise ValueError(f"unknown lock state {data!r}")


def _first[T](*readings: Reading[T] | None) -> Reading[T] | None:
    """The first reading that has a value; else the first reading at all (a failure)."""
    for reading in readings:
        if reading is not None and reading.value is not None:
            return reading
    return next((r for r in readings if r is not None), None)


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
        return _reading(cap(capability).get(prop), convert, problems, f"{capability}.{prop}")

    diagnostics = "diagnostics"
    parsed.odometer_km = _first(
        read(diagnostics, "odometer", _to_km),
        read(diagnostics, "mileage", _to_km),  # deprecated
        read(diagnostics, "mileage_meters", _to_km),  # deprecated
    )
    parsed.fuel_level = read(diagnostics, "fuel_level", _percentage)
    parsed.battery_level = _first(
        read("charging", "battery_level", _percentage),
        read(diagnostics, "battery_level", _percentage),
    )
    parsed.estimated_range_km = _first(
        read(diagnostics, "estimated_range", _to_km),
        read("charging", "estimated_range", _to_km),
        read(diagnostics, "estimated_primary_powertrain_range", _to_km),
    )
    parsed.charging_state = read("charging", "status", _string)
    parsed.speed_kmh = _first(
        read(diagnostics, "speed", _to_kmh), read(diagnostics, "wheel_based_speed", _to_kmh)
    )
    parsed.ignition = _first(
        read("ignition", "state", _string), read("ignition", "status", _string)
    )
    parsed.coordinates = read("vehicle_location", "coordinates", _coordinates)
    parsed.heading_deg = read("vehicle_location", "heading", _to_degrees)
    parsed.track = _track(cap("vehicle_location").get("coordinates"), problems)
    _parse_doors(parsed, cap("doors"))
    return parsed


def _track(prop: Any, problems: list[str]) -> list[Reading[Coordinates]]:
    out: list[Reading[Coordinates]] = []
    for entry in _sorted_entries(prop):
        if "data" not in entry:
            continue
        try:
            coords = _coordinates(entry["data"])
        except ValueError:
            continue  # already reported by the single-value reading
        out.append(Reading(coords, parse_timestamp(entry.get("timestamp")), _failure(entry)))
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
    for entry in _sorted_entries(prop):
        data = entry.get("data")
        failure = _failure(entry)
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
        _lock_state,
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
    overall = _reading(doors.get("locks_state"), _lock_state, problems, "doors.locks_state")
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
