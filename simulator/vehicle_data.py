"""Simulated Auto API level 13 vehicle data, deterministic per VIN and moving with time.

``vehicle_state(vin, at)`` returns the REST shape of ``GET /v1/vehicle-data/autoapi-13/{vin}``
(each property ``{data, timestamp}``; multi-value properties as arrays). The same VIN at the same
instant always gives the same answer, in any process, so the HTTP endpoint, the MQTT publisher and
tests agree without sharing state.

The story: every vehicle drives laps of its own circular route around a European city, in cycles
of 45-90 minutes: a trip, then a stop, then a cycle of rest. While driving the location moves, the
odometer rises and fuel or battery falls; when it parks the ignition goes off and the doors open,
close and lock. After the trip that leaves the tank or battery below 30 %, it refuels on arrival
or, electric, charges during the stop that follows (battery rising, status "charging").

Pure Python (no Django), so the MQTT publisher and tests can reuse it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
KM_PER_DEGREE_LAT = 111.32

CITIES: tuple[tuple[str, float, float], ...] = (
    ("Berlin", 52.5200, 13.4050),
    ("Munich", 48.1372, 11.5756),
    ("Hamburg", 53.5511, 9.9937),
    ("Amsterdam", 52.3676, 4.9041),
    ("Paris", 48.8566, 2.3522),
    ("Vienna", 48.2082, 16.3738),
    ("Zurich", 47.3769, 8.5417),
    ("Milan", 45.4642, 9.1900),
)

WHEELS = ("front_left", "front_right", "rear_right", "rear_left")


@dataclass(frozen=True)
class VehicleProfile:
    vin: str
    city: str
    center_lat: float
    center_lon: float
    route_radius_km: float
    start_angle: float
    electric: bool
    base_odometer_km: float
    speed_kmh: float
    cycle_seconds: int
    drive_seconds: int
    phase_seconds: int
    full_range_km: float
    tire_bars: float


def _seed(vin: str) -> bytes:
    return hashlib.sha256(vin.strip().upper().encode()).digest()


def _unit(seed: bytes, index: int) -> float:
    """A number in [0, 1) derived from two bytes of the seed."""
    return int.from_bytes(seed[index : index + 2], "big") / 65536


def profile(vin: str) -> VehicleProfile:
    seed = _seed(vin)
    city, lat, lon = CITIES[seed[0] % len(CITIES)]
    cycle = int(45 * 60 + _unit(seed, 2) * 45 * 60)  # 45-90 min
    electric = seed[4] % 3 == 0
    return VehicleProfile(
        vin=vin.strip().upper(),
        city=city,
        center_lat=lat,
        center_lon=lon,
        route_radius_km=2 + _unit(seed, 6) * 6,
        start_angle=_unit(seed, 8) * 2 * math.pi,
        electric=electric,
        base_odometer_km=round(2000 + _unit(seed, 10) * 40000, 1),
        speed_kmh=30 + _unit(seed, 12) * 30,
        cycle_seconds=cycle,
        drive_seconds=int(cycle * (0.3 + _unit(seed, 14) * 0.15)),
        phase_seconds=int(_unit(seed, 16) * cycle),
        full_range_km=(300 + _unit(seed, 18) * 200) if electric else (600 + _unit(seed, 18) * 300),
        tire_bars=2.3 + _unit(seed, 20) * 0.2,
    )


@dataclass(frozen=True)
class Moment:
    """Where a vehicle's story stands at one instant."""

    driving: bool
    seconds_into_cycle: float
    cycle_index: int
    distance_km: float  # driven since EPOCH


def moment(p: VehicleProfile, at: datetime) -> Moment:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    t = max(0.0, (at - EPOCH).total_seconds()) + p.phase_seconds
    cycles, into = divmod(t, p.cycle_seconds)
    cycles = int(cycles)
    # Only every other cycle is a trip; the others are a long stop.
    trip_cycle = cycles % 2 == 0
    driven_s: float = ((cycles + 1) // 2) * p.drive_seconds
    if trip_cycle:
        driven_s += min(into, p.drive_seconds)
    else:
        into += p.cycle_seconds  # still parked since the end of the previous trip
    return Moment(
        driving=trip_cycle and into < p.drive_seconds,
        seconds_into_cycle=into,
        cycle_index=int(cycles),
        distance_km=driven_s * p.speed_kmh / 3600,
    )


def _ts(at: datetime) -> str:
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _prop(data: object, at: datetime) -> dict:
    return {"data": data, "timestamp": _ts(at)}


def _position(p: VehicleProfile, distance_km: float) -> tuple[float, float, float]:
    angle = p.start_angle + distance_km / p.route_radius_km
    lat = p.center_lat + (p.route_radius_km / KM_PER_DEGREE_LAT) * math.sin(angle)
    lon_scale = KM_PER_DEGREE_LAT * math.cos(math.radians(p.center_lat))
    lon = p.center_lon + (p.route_radius_km / lon_scale) * math.cos(angle)
    # moving counter-clockwise: heading is the tangent, as a compass bearing
    east, north = -math.sin(angle), math.cos(angle)
    heading = (math.degrees(math.atan2(east, north)) + 360) % 360
    return round(lat, 6), round(lon, 6), round(heading, 1)


# A vehicle charges (or refuels) at the stop after the trip that takes it below this level.
RECHARGE_BELOW = 0.3


def energy(p: VehicleProfile, at: datetime) -> tuple[float, bool]:
    """Fuel or battery (0.0-1.0) at ``at`` and whether it is charging now.

    Every trip uses the same energy. After the trip that leaves less than RECHARGE_BELOW, the
    vehicle charges during the stop that follows: an electric one rises steadily to full over
    most of the stop (charging), a combustion one is refuelled when it arrives. Then the round
    starts again, so the level is a pure function of time like the rest of the story.
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    t = max(0.0, (at - EPOCH).total_seconds()) + p.phase_seconds
    cycles, into = divmod(t, p.cycle_seconds)
    cycles = int(cycles)
    in_trip_cycle = cycles % 2 == 0
    trip_km = p.drive_seconds * p.speed_kmh / 3600
    trips_per_charge = int((1 - RECHARGE_BELOW) * p.full_range_km / trip_km) + 1
    trip = (cycles // 2) % trips_per_charge
    driven = min(into, p.drive_seconds) if in_trip_cycle else p.drive_seconds
    level = 1.0 - (trip * trip_km + driven * p.speed_kmh / 3600) / p.full_range_km
    stopped = not in_trip_cycle or into >= p.drive_seconds
    if trip == trips_per_charge - 1 and stopped:
        if not p.electric:
            return 1.0, False
        stop = (p.cycle_seconds - p.drive_seconds) + p.cycle_seconds
        elapsed = (into - p.drive_seconds) if in_trip_cycle else (stop - p.cycle_seconds) + into
        low = level
        level = low + (1.0 - low) * min(1.0, elapsed / (0.8 * stop))
        return round(level, 3), level < 1.0
    return round(max(level, 0.0), 3), False


def vehicle_state(vin: str, at: datetime, *, brand: str = "sandbox") -> dict:
    """The Auto API L13 REST shape of this VIN's state at ``at`` (timezone-aware)."""
    p = profile(vin)
    m = moment(p, at)
    lat, lon, heading = _position(p, m.distance_km)
    level, charging = energy(p, at)
    parked_for = m.seconds_into_cycle - p.drive_seconds  # negative while driving
    wobble = math.sin(m.seconds_into_cycle / 37.0)
    speed = round(p.speed_kmh + 8 * wobble, 1) if m.driving else 0.0

    if m.driving:
        ignition = "on"
        locks_state = "unlocked"
        open_doors: set[str] = set()
    else:
        ignition = "off" if parked_for < 180 else "lock"
        locks_state = "unlocked" if parked_for < 180 else "locked"
        open_doors = {"front_left"} if parked_for < 60 else set()
        if m.cycle_index % 5 == 0 and parked_for < 120:
            open_doors.add("rear_right")  # someone unloads the back every few stops

    diagnostics: dict = {
        "odometer": _prop(
            {"value": round(p.base_odometer_km + m.distance_km, 1), "unit": "kilometers"}, at
        ),
        "speed": _prop({"value": speed, "unit": "kilometers_per_hour"}, at),
        "battery_voltage": _prop({"value": 14.1 if m.driving else 12.6, "unit": "volts"}, at),
        "tire_pressures": [
            _prop(
                {
                    "location": wheel,
                    "pressure": {
                        "value": round(p.tire_bars - 0.03 * i + (0.1 if m.driving else 0.0), 2),
                        "unit": "bars",
                    },
                },
                at,
            )
            for i, wheel in enumerate(WHEELS)
        ],
    }
    state: dict = {"vin": p.vin, "brand": brand.strip().lower().replace("-", "_")}
    if p.electric:
        state["charging"] = {
            "battery_level": _prop(level, at),
            "estimated_range": _prop(
                {"value": round(level * p.full_range_km, 1), "unit": "kilometers"}, at
            ),
            "status": _prop("charging" if charging else "not_charging", at),
        }
    else:
        diagnostics["fuel_level"] = _prop(level, at)
        diagnostics["estimated_range"] = _prop(
            {"value": round(level * p.full_range_km, 1), "unit": "kilometers"}, at
        )
        diagnostics["engine_rpm"] = _prop(
            {
                "value": round(1800 + 600 * wobble) if m.driving else 0,
                "unit": "revolutions_per_minute",
            },
            at,
        )
    state["diagnostics"] = diagnostics
    state["doors"] = {
        "locks_state": _prop(locks_state, at),
        "locks": [_prop({"location": w, "lock_state": locks_state}, at) for w in WHEELS],
        "positions": [
            _prop({"location": w, "position": "open" if w in open_doors else "closed"}, at)
            for w in WHEELS
        ],
    }
    state["ignition"] = {"state": _prop(ignition, at)}
    state["vehicle_location"] = {
        "coordinates": _prop({"latitude": lat, "longitude": lon}, at),
        "heading": _prop({"value": heading, "unit": "degrees"}, at),
        "altitude": _prop(
            {"value": round(40 + 20 * _unit(_seed(vin), 22), 1), "unit": "meters"}, at
        ),
    }
    return state


# Where each normalised field lives in the Auto API state: (capability, property).
FIELD_PROPERTIES: dict[str, tuple[str, str]] = {
    "battery_level": ("charging", "battery_level"),
    "fuel_level": ("diagnostics", "fuel_level"),
    "odometer_km": ("diagnostics", "odometer"),
    "speed_kmh": ("diagnostics", "speed"),
    "coordinates": ("vehicle_location", "coordinates"),
}
SIMULATED_FAILURE = {
    "reason": "execution_timeout",
    "description": "The vehicle did not answer in time (simulated)",
}


def with_failures(state: dict, fields: list[str], at: datetime) -> dict:
    """``state`` with each of ``fields`` (that the vehicle has) reported as HM's failure."""
    for name in fields:
        capability, prop = FIELD_PROPERTIES.get(name, ("", ""))
        if prop and prop in state.get(capability, {}):
            state[capability][prop] = {"timestamp": _ts(at), "failure": dict(SIMULATED_FAILURE)}
    return state
