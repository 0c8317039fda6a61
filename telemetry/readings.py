"""One Auto API property read into a normalised value: its entries, HM's timestamp on each,
failures in words, and units converted (km, km/h, degrees, percent). Pure Python: no Django.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

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


def str_or_none(value: Any) -> str | None:
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


def failure_of(entry: Mapping[str, Any]) -> Failure | None:
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


def sorted_entries(prop: Any) -> list[Mapping[str, Any]]:
    """Entries oldest first; entries without a timestamp count as oldest, list order breaks ties."""
    return [e for _, e in sorted(enumerate(_entries(prop)), key=_order_key)]


def reading[T](
    prop: Any,
    convert: Callable[[Any], T | None],
    problems: list[str],
    name: str,
) -> Reading[T] | None:
    """The newest value of a single-valued property, with the newest failure if not older."""
    entries = sorted_entries(prop)
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
    newest_failure = failure_of(newest)
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


to_km = _unit_converter(LENGTH_TO_KM, "length")
to_kmh = _unit_converter(SPEED_TO_KMH, "speed")
to_degrees = _unit_converter(ANGLE_TO_DEGREES, "angle")


def percentage(data: Any) -> float | None:
    if not isinstance(data, int | float) or isinstance(data, bool):
        raise ValueError("percentage is not a number")
    if not 0.0 <= float(data) <= 1.0:
        raise ValueError(f"percentage {data} is outside 0.0-1.0")
    return float(data)


def string(data: Any) -> str | None:
    if not isinstance(data, str):
        raise ValueError("expected a string")
    return data


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def coordinates(data: Any) -> Coordinates | None:
    if not isinstance(data, Mapping):
        raise ValueError("coordinates are not an object")
    lat, lon = data.get("latitude"), data.get("longitude")
    if not (_is_number(lat) and _is_number(lon)):
        raise ValueError("coordinates lack a numeric latitude/longitude")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"coordinates {lat},{lon} are out of range")
    return Coordinates(latitude=float(lat), longitude=float(lon))


def lock_state(data: Any) -> bool | None:
    if data == "locked":
        return True
    if data == "unlocked":
        return False
    raise ValueError(f"unknown lock state {data!r}")


def first[T](*readings: Reading[T] | None) -> Reading[T] | None:
    """The first reading that has a value; else the first reading at all (a failure)."""
    for reading in readings:
        if reading is not None and reading.value is not None:
            return reading
    return next((r for r in readings if r is not None), None)
