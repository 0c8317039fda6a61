"""The ids of one fleet page sorted by a telemetry column, read from that column's index.

Only vehicles whose data access is approved show telemetry, so the order is: those with a
value, by the value (then VIN), then every other vehicle by VIN. Sorting every vehicle by that
rule means computing it for the whole fleet; read as two segments instead, the first walks the
index on the column (migration telemetry 0005) and stops after the page, the second walks the
(organization, VIN) index. A page costs one query, two where it crosses from one segment to
the other, three past it (the first segment is counted once).
"""

from __future__ import annotations

from collections.abc import Collection

from django.db.models import F, Q, QuerySet

from vehicles.models import Vehicle


def telemetry_page_ids(
    queryset: QuerySet[Vehicle],
    column: str,
    *,
    shown_for: Collection[str],
    descending: bool,
    bottom: int,
    top: int,
) -> list[int]:
    """Ids of rows ``bottom:top`` of ``queryset`` (filtered, any order) in the telemetry order
    of ``column`` (a ``latest_telemetry__...`` path) as ``filter_fleet`` sorts them: vehicles
    whose clearance status is in ``shown_for`` and that have a value first."""
    shown = Q(clearance__status__in=list(shown_for)) & Q(**{f"{column}__isnull": False})
    key = F(column).desc() if descending else F(column).asc()
    valued = queryset.filter(shown).values_list("pk", flat=True)
    ids = list(valued.order_by(key, "vin")[bottom:top])
    if len(ids) == top - bottom:
        return ids
    # The page reaches past the vehicles with a value: the rest by VIN.
    with_value = bottom + len(ids) if ids else valued.order_by().count()
    others = queryset.exclude(pk__in=valued.order_by()).values_list("pk", flat=True)
    start = max(bottom - with_value, 0)
    ids += list(others.order_by("vin")[start : top - with_value])
    return ids
