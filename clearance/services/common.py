"""What every lifecycle flow shares: a failure in words on clearance rows, vehicle ids from
what callers hand over (a queryset, vehicles or ids)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from clearance.hm import HMError
from clearance.models import Clearance
from vehicles.models import Vehicle


def words(exc: Exception) -> str:
    if isinstance(exc, HMError):
        return exc.message
    return str(exc) or type(exc).__name__


def retry_words(reason: str, at: datetime | None) -> str:
    """Why a unit of work waits and when it is tried next, for the row of the vehicle."""
    reason = reason.rstrip()
    if reason and reason[-1] not in ".!?":
        reason += "."
    if at is None:
        return reason
    return f"{reason} Next try at {timezone.localtime(at):%H:%M:%S}.".lstrip()


def record_error(rows: QuerySet[Clearance] | Iterable[Clearance], message: str) -> None:
    """Write ``message`` as the clearances' last error (their status does not change)."""
    now = timezone.now()
    if isinstance(rows, QuerySet):
        rows.update(last_error=message, last_error_at=now)
        return
    Clearance.objects.filter(pk__in=[r.pk for r in rows]).update(
        last_error=message, last_error_at=now
    )


def vehicle_ids(vehicles: Iterable[Vehicle | int] | QuerySet[Vehicle] | None) -> list[int]:
    if vehicles is None:
        return []
    if isinstance(vehicles, QuerySet):
        return list(vehicles.values_list("pk", flat=True))
    return [v if isinstance(v, int) else v.pk for v in vehicles]


def in_ids(column: str, ids: Iterable[int]) -> tuple[str, list[Any]]:
    """SQL for ``column IN (ids)`` with a single parameter, however many ids: an array on
    PostgreSQL (sent as one comma-separated text: the driver quotes a list element by element,
    a second per 100,000 ids), a JSON list on SQLite (no limit on the number of variables)."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(string_to_array(%s, ',')::bigint[])", [",".join(map(str, ids))]
    return f"{column} IN (SELECT value FROM json_each(%s))", [json.dumps(list(ids))]  # noqa: S608
