"""The simulator's clock: real time (time-machine aware) plus an offset shared by all processes.

The offset lives in the database, so the test process, a live_server thread and a separate
Celery worker agree on "now". Tests travel forward with ``advance()`` instead of sleeping.
Assertion ``iat`` checks use ``wall_now()`` (the caller's clock is a real clock).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db.models import F

from .models import SimulatorClock

_ROW = 1


def wall_now() -> datetime:
    return datetime.now(UTC)


def offset() -> timedelta:
    seconds = (
        SimulatorClock.objects.filter(pk=_ROW).values_list("offset_seconds", flat=True).first()
    )
    return timedelta(seconds=seconds or 0)


def now() -> datetime:
    return wall_now() + offset()


def advance(delta: timedelta | float) -> datetime:
    """Move simulator time forward (or back with a negative delta); returns the new now()."""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    SimulatorClock.objects.get_or_create(pk=_ROW)
    SimulatorClock.objects.filter(pk=_ROW).update(offset_seconds=F("offset_seconds") + seconds)
    return now()


def reset() -> None:
    SimulatorClock.objects.update_or_create(pk=_ROW, defaults={"offset_seconds": 0})
