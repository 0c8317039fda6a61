"""Trips, derived from the snapshots: a trip runs from a stop to the next stop.

A snapshot is "moving" when the ignition is on (or starting), or, where the carmaker sends no
ignition, when the speed is above walking pace or the vehicle moved more than MOVED_M since the
snapshot before. A trip starts where the vehicle last stood (the stopped snapshot before the first
moving one) and ends at the first stopped snapshot after it; one still moving at the end of the
range is "under way". Distance: the odometer's difference where both ends have one, else the sum
of the straight lines between the positions. Trips shorter than MIN_TRIP_KM are left out (a car
moved across a car park).

``fleet_distance`` is the fleet-wide figure: per vehicle, the odometer's rise over a period, in
ONE grouped query.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from django.db.models import Count, F, Max, Min, QuerySet

from organizations.models import Organization
from telemetry.models import TelemetrySnapshot
from vehicles.geo import Circle, distance_m, place_at
from vehicles.models import Vehicle

MOVING_SPEED_KMH = 3.0
MOVED_M = 150.0
MIN_TRIP_KM = 0.2
MOVING_IGNITION = frozenset({"on", "start"})
# A trip's path on the map keeps at most this many points.
PATH_POINTS = 60

Row = tuple[datetime, str, float | None, float | None, float | None, float | None]
# (captured_at, ignition, speed_kmh, odometer_km, latitude, longitude)


@dataclass
class Trip:
    started_at: datetime
    ended_at: datetime | None  # None: under way at the end of the range
    start: tuple[float, float] | None
    end: tuple[float, float] | None
    start_place: str = ""
    end_place: str = ""
    distance_km: float = 0.0
    distance_source: str = "odometer"  # or "positions"
    path: list[tuple[float, float]] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        if self.ended_at is None:
            return 0.0
        return (self.ended_at - self.started_at).total_seconds()

    @property
    def duration_words(self) -> str:
        if self.ended_at is None:
            return "under way"
        minutes = round(self.duration_s / 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _moving(row: Row, before: Row | None) -> bool:
    _, ignition, speed, _, lat, lon = row
    ignition = (ignition or "").strip().lower()
    if ignition:
        return ignition in MOVING_IGNITION
    if speed is not None and speed > MOVING_SPEED_KMH:
        return True
    if before is not None and None not in (lat, lon, before[4], before[5]):
        return distance_m(before[4], before[5], lat, lon) > MOVED_M  # type: ignore[arg-type]
    return False


def _thin(path: list[tuple[float, float]], limit: int = PATH_POINTS) -> list[tuple[float, float]]:
    if len(path) <= limit:
        return path
    step = (len(path) - 1) / (limit - 1)
    return [path[round(i * step)] for i in range(limit)]


def _finish(rows: Sequence[Row], places: Sequence[Circle]) -> Trip:
    first, last = rows[0], rows[-1]
    path = [(r[4], r[5]) for r in rows if r[4] is not None and r[5] is not None]
    odometers = [r[3] for r in rows if r[3] is not None]
    trip = Trip(
        started_at=first[0],
        ended_at=last[0],
        start=path[0] if path else None,
        end=path[-1] if path else None,
        path=_thin(path),
    )
    if first[3] is not None and last[3] is not None and last[3] >= first[3]:
        trip.distance_km = last[3] - first[3]
    elif len(odometers) >= 2 and odometers[-1] >= odometers[0]:
        trip.distance_km = odometers[-1] - odometers[0]
    else:
        trip.distance_source = "positions"
        trip.distance_km = sum(distance_m(*a, *b) for a, b in pairwise(path)) / 1000
    for attr, point in (("start_place", trip.start), ("end_place", trip.end)):
        if point is not None:
            place = place_at(point[0], point[1], places)
            setattr(trip, attr, place.name if place else "")
    return trip


def derive(rows: Iterable[Row], places: Sequence[Circle] = ()) -> list[Trip]:
    """Trips from snapshot rows ordered oldest first (pure: rows in, trips out)."""
    trips: list[Trip] = []
    current: list[Row] = []
    before: Row | None = None
    for row in rows:
        moving = _moving(row, before)
        if moving and not current:
            current = [before] if before is not None else []
            current.append(row)
        elif moving:
            current.append(row)
        elif current:
            current.append(row)
            trips.append(_finish(current, places))
            current = []
        before = row
    if current:
        trip = _finish(current, places)
        trip.ended_at = None
        trip.end_place = ""
        trips.append(trip)
    return [t for t in trips if t.distance_km >= MIN_TRIP_KM or t.ended_at is None]


def snapshot_rows(vehicle: Vehicle, since: datetime, until: datetime) -> Iterator[Row]:
    """The columns trips need, oldest first, streamed (a month of one-minute data is 43,200)."""
    return (
        TelemetrySnapshot.objects.filter(
            vehicle=vehicle, captured_at__gte=since, captured_at__lte=until
        )
        .order_by("captured_at", "pk")
        .values_list("captured_at", "ignition", "speed_kmh", "odometer_km", "latitude", "longitude")
        .iterator(chunk_size=5000)
    )


def trips_for(
    vehicle: Vehicle, since: datetime, until: datetime, places: Sequence[Circle] = ()
) -> list[Trip]:
    return derive(snapshot_rows(vehicle, since, until), places)


def fleet_distance(organization: Organization, since: datetime, until: datetime) -> QuerySet:
    """Per vehicle of the organization with snapshots in the period: the odometer's rise (km)
    and the number of snapshots, busiest first. ONE grouped query."""
    return (
        TelemetrySnapshot.objects.filter(
            vehicle__organization=organization, captured_at__gte=since, captured_at__lt=until
        )
        .values(
            "vehicle_id",
            "vehicle__public_id",
            "vehicle__vin",
            "vehicle__nickname",
            "vehicle__license_plate",
        )
        .annotate(
            first_km=Min("odometer_km"),
            last_km=Max("odometer_km"),
            snapshots=Count("pk"),
            distance_km=Max("odometer_km") - Min("odometer_km"),
        )
        .order_by(F("distance_km").desc(nulls_last=True), "vehicle__vin")
    )


def trip_json(trips: Sequence[Trip]) -> list[dict[str, Any]]:
    """For the vehicle map: each trip's thinned path and its ends."""
    return [
        {"path": [[round(a, 6), round(b, 6)] for a, b in t.path], "under_way": t.ended_at is None}
        for t in trips
        if t.path
    ]
