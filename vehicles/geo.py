"""Where a position lies relative to named circles (telemetry's places): which one a position
is in, in Python and as a SQL condition. Here, below clearance and telemetry, so the fleet
filter (clearance/selectors.py) and the telemetry pages share the one rule.

Distances use the equirectangular approximation (exact to well under 1 % for circles of a few
kilometres), the same formula in Python and in SQL, so the list's "inside place P" filter and
the words "at Depot North" agree. Plain arithmetic: PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from django.db.models import ExpressionWrapper, F, FloatField, Q
from django.db.models.expressions import CombinedExpression, Value
from django.db.models.lookups import LessThanOrEqual

METRES_PER_DEGREE = 111_320.0
# Bounds of a place's radius (a parking bay to a city).
MIN_RADIUS_M = 20
MAX_RADIUS_M = 50_000


class Circle(Protocol):
    name: str
    latitude: float
    longitude: float
    radius_m: int


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Metres between two points (equirectangular, around the first point's latitude)."""
    dy = (lat2 - lat1) * METRES_PER_DEGREE
    dx = (lon2 - lon1) * METRES_PER_DEGREE * math.cos(math.radians(lat1))
    return math.hypot(dx, dy)


def place_at[P: Circle](
    latitude: float | None, longitude: float | None, places: Sequence[P]
) -> P | None:
    """The place the position is in (the nearest centre when circles overlap), or None."""
    if latitude is None or longitude is None:
        return None
    best: tuple[float, P] | None = None
    for place in places:
        d = distance_m(place.latitude, place.longitude, latitude, longitude)
        if d <= place.radius_m and (best is None or d < best[0]):
            best = (d, place)
    return best[1] if best else None


def inside_q(place: Circle, latitude: str = "latitude", longitude: str = "longitude") -> Q:
    """A filter: the row's (latitude, longitude) columns lie inside the place.

    A bounding box first (plain ranges the planner can use), then the circle itself.
    """
    scale = math.cos(math.radians(place.latitude))
    dy = _times(F(latitude) - Value(place.latitude), METRES_PER_DEGREE)
    dx = _times(F(longitude) - Value(place.longitude), METRES_PER_DEGREE * scale)
    squared = ExpressionWrapper(
        CombinedExpression(_times(dy, dy), "+", _times(dx, dx)), output_field=FloatField()
    )
    lat_span = place.radius_m / METRES_PER_DEGREE
    lon_span = lat_span / max(scale, 1e-6)
    return Q(
        LessThanOrEqual(squared, float(place.radius_m) ** 2),
        **{
            f"{latitude}__gte": place.latitude - lat_span,
            f"{latitude}__lte": place.latitude + lat_span,
            f"{longitude}__gte": place.longitude - lon_span,
            f"{longitude}__lte": place.longitude + lon_span,
        },
    )


def _times(expression: Any, factor: Any) -> CombinedExpression:
    other = factor if hasattr(factor, "resolve_expression") else Value(float(factor))
    return CombinedExpression(expression, "*", other)
