"""Whether a vehicle still reports, in a fleet manager's words: defined once for the fleet list,
the map (marker colours) and the list's "silent for more than N hours" filter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

# Silent this long or more: "silent for days".
DAYS = timedelta(days=1)

REPORTING = "reporting"
SILENT = "silent"
SILENT_DAYS = "silent-days"
NO_DATA = "no-data"
LABELS = {
    REPORTING: "Reporting",
    SILENT: "Silent for hours",
    SILENT_DAYS: "Silent for days",
    NO_DATA: "No data yet",
}


@dataclass(frozen=True, slots=True)
class Freshness:
    state: str  # one of LABELS
    words: str  # "Reporting", "Silent for 3 h", "Silent for 4 days", "No data yet"


def reporting_window() -> timedelta:
    """A vehicle that reported within this is "reporting" (the panel's stale threshold)."""
    return timedelta(seconds=settings.TELEMETRY_STALE_AFTER_SECONDS)


def freshness(seen: datetime | None, now: datetime | None = None) -> Freshness:
    if seen is None:
        return Freshness(NO_DATA, LABELS[NO_DATA])
    silent = (now or timezone.now()) - seen
    if silent <= reporting_window():
        return Freshness(REPORTING, LABELS[REPORTING])
    if silent < timedelta(hours=1):
        return Freshness(SILENT, f"Silent for {int(silent.total_seconds() // 60)} min")
    if silent < DAYS:
        return Freshness(SILENT, f"Silent for {int(silent.total_seconds() // 3600)} h")
    days = int(silent / DAYS)
    return Freshness(SILENT_DAYS, f"Silent for {days} day{'s' if days != 1 else ''}")
