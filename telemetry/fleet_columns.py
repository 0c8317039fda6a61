"""The fleet list's telemetry columns: which there are, which a member hides, and each row's
cells from its vehicle's LatestTelemetry (fetched with the page's rows: no query per row).

Only vehicles whose data access is approved show telemetry; the others show a dash.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from clearance import statuses
from organizations.models import Organization
from telemetry.freshness import Freshness, freshness
from telemetry.models import FleetColumns
from vehicles.geo import Circle, place_at

# (key, heading, the fleet filter's sort key or "" when the column does not sort)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("energy", "Battery / fuel", "energy"),
    ("range", "Range", "range"),
    ("odometer", "Odometer", "odometer"),
    ("position", "Last position", "position"),
    ("freshness", "Reporting", "seen"),
)
COLUMN_KEYS = tuple(key for key, _, _ in COLUMNS)
# Shown in red below this level (the same as the demo's alert rules).
LOW_ENERGY = 0.25


@dataclass(frozen=True, slots=True)
class Cells:
    energy: str  # "Battery 76 %", "Fuel 40 %", ""
    energy_low: bool
    range: str  # "312 km"
    odometer: str  # "12,346 km"
    place: str  # "Depot North" or ""
    position: str  # "52.52000, 13.40500" or ""
    freshness: Freshness | None  # None: not approved


def hidden_columns(user: Any, organization: Organization) -> set[str]:
    row = FleetColumns.objects.filter(user=user, organization=organization).first()
    return {key for key in (row.hidden if row else []) if key in COLUMN_KEYS}


def remember_hidden(user: Any, organization: Organization, hidden: Iterable[str]) -> list[str]:
    keep = [key for key in COLUMN_KEYS if key in set(hidden)]
    FleetColumns.objects.update_or_create(
        user=user, organization=organization, defaults={"hidden": keep}
    )
    return keep


def _percent(level: float | None) -> str:
    return "" if level is None else f"{level * 100:.0f} %"


def cells(vehicle: Any, places: Sequence[Circle], now: datetime | None = None) -> Cells | None:
    """One row's cells; None unless the vehicle's data access is approved. ``vehicle`` comes
    with ``latest_telemetry`` and ``clearance`` selected (the fleet page's one query)."""
    clearance = getattr(vehicle, "clearance", None) if _has(vehicle, "clearance") else None
    if clearance is None or not statuses.data_flows(clearance.status):
        return None
    latest = (
        getattr(vehicle, "latest_telemetry", None) if _has(vehicle, "latest_telemetry") else None
    )
    seen = vehicle.last_seen_at or (latest.captured_at if latest else None)
    fresh = freshness(seen, now or timezone.now())
    if latest is None:
        return Cells("", False, "", "", "", "", fresh)
    if latest.battery_level is not None:
        energy = f"Battery {_percent(latest.battery_level)}"
    elif latest.fuel_level is not None:
        energy = f"Fuel {_percent(latest.fuel_level)}"
    else:
        energy = ""
    place = place_at(latest.latitude, latest.longitude, places)
    return Cells(
        energy=energy,
        energy_low=latest.energy_level is not None and latest.energy_level < LOW_ENERGY,
        range="" if latest.estimated_range_km is None else f"{latest.estimated_range_km:,.0f} km",
        odometer="" if latest.odometer_km is None else f"{latest.odometer_km:,.0f} km",
        place=place.name if place else "",
        position=(
            ""
            if latest.latitude is None or latest.longitude is None
            else f"{latest.latitude:.5f}, {latest.longitude:.5f}"
        ),
        freshness=fresh,
    )


def _has(vehicle: Any, relation: str) -> bool:
    """A reverse one-to-one that select_related found missing raises; that means "none"."""
    try:
        getattr(vehicle, relation)
    except Exception:
        return False
    return True
