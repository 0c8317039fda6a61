"""Chart history over a chosen range, bucketed in SQL: a bounded number of points per chart
whatever the range (a month of one-minute snapshots is as light as a day).

One GROUP BY over (vehicle, captured_at) rows in the range; the bucket is the snapshot's epoch
second divided by the bucket width, computed by the database (PostgreSQL and SQLite alike).
Per bucket: the first time, the highest odometer, the mean fuel and battery level, the top speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Avg, FloatField, Func, IntegerField, Max, Min
from django.db.models.functions import Cast, Floor
from django.utils import timezone

from telemetry.models import TelemetrySnapshot
from vehicles.models import Vehicle

# At most this many points per chart line (one per bucket).
MAX_POINTS = 240
# The ranges offered above the charts: key -> (label, length).
RANGES: dict[str, tuple[str, timedelta]] = {
    "24h": ("24 hours", timedelta(hours=24)),
    "7d": ("7 days", timedelta(days=7)),
    "30d": ("30 days", timedelta(days=30)),
}
DEFAULT_RANGE = "24h"
CUSTOM = "custom"


class Epoch(Func):
    """Seconds since 1970 of a timestamp column, as a float."""

    output_field = FloatField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)", **extra_context
        )

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)",
            **extra_context,
        )


@dataclass(frozen=True, slots=True)
class Window:
    key: str  # "24h", "7d", "30d" or "custom"
    since: datetime
    until: datetime
    label: str  # "7 days", "1 Nov 2026 – 7 Nov 2026"
    clipped: bool  # the custom start lay before the retention and was moved
    error: str  # the custom range's problem in words ("" when none)

    def as_params(self) -> dict[str, str]:
        if self.key != CUSTOM:
            return {"range": self.key}
        return {
            "range": CUSTOM,
            "from": timezone.localtime(self.since).date().isoformat(),
            "to": (timezone.localtime(self.until) - timedelta(seconds=1)).date().isoformat(),
        }


def retention_start(now: datetime) -> datetime:
    return now - timedelta(days=settings.TELEMETRY_RETENTION_DAYS)


def _day(raw: str | None) -> date | None:
    try:
        return date.fromisoformat((raw or "").strip())
    except ValueError:
        return None


def window(params: Any, now: datetime | None = None) -> Window:
    """The chosen range from URL parameters: ?range=7d, or ?range=custom&from=...&to=... (whole
    days, both included). Anything unreadable falls back to 24 hours, saying why."""
    now = now or timezone.now()
    key = (params.get("range") or DEFAULT_RANGE).strip()
    if key in RANGES:
        label, length = RANGES[key]
        return Window(key, now - length, now, label, False, "")
    if key != CUSTOM:
        return window({}, now)
    start, end = _day(params.get("from")), _day(params.get("to"))
    problem = ""
    if start is None or end is None:
        problem = "Choose both days of the range as dates (from and to)."
    elif end < start:
        problem = "The range ends before it starts: choose a “to” day on or after the “from” day."
    if problem:
        fallback = window({}, now)
        return Window(fallback.key, fallback.since, fallback.until, fallback.label, False, problem)
    assert start is not None and end is not None
    zone = timezone.get_current_timezone()
    since = datetime.combine(start, time.min, tzinfo=zone)
    until = min(datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone), now)
    floor = retention_start(now)
    clipped = since < floor
    since = max(since, floor)
    if until <= since:
        until = since + timedelta(hours=1)
    label = f"{start:%-d %b %Y} – {end:%-d %b %Y}"
    return Window(CUSTOM, since, until, label, clipped, "")


def bucket_seconds(since: datetime, until: datetime, points: int = MAX_POINTS) -> int:
    return max(60, math.ceil((until - since).total_seconds() / points))


def series(vehicle: Vehicle, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Chart rows of the range, oldest first: at most MAX_POINTS (+1), one per bucket."""
    width = bucket_seconds(since, until)
    base = since.timestamp()
    bucket = Cast(Floor((Epoch("captured_at") - base) / width), IntegerField())
    rows = (
        TelemetrySnapshot.objects.filter(
            vehicle=vehicle, captured_at__gte=since, captured_at__lte=until
        )
        .annotate(bucket=bucket)
        .values("bucket")
        .annotate(
            captured_at=Min("captured_at"),
            odometer_km=Max("odometer_km"),
            fuel_level=Avg("fuel_level"),
            battery_level=Avg("battery_level"),
            speed_kmh=Max("speed_kmh"),
        )
        .order_by("bucket")
    )
    return [
        {
            "captured_at": row["captured_at"],
            "odometer_km": row["odometer_km"],
            "fuel_level": row["fuel_level"],
            "battery_level": row["battery_level"],
            "speed_kmh": row["speed_kmh"],
        }
        for row in rows
    ]
