"""Fleet events: what happened to a vehicle or an import, told to whoever listens.

The apps that make things happen (clearance, telemetry, imports) ``publish`` these events; the
apps above them (notifications) ``subscribe`` once at start-up, in their ``AppConfig.ready``. A
publisher never imports a listener: this module, low in the layering, is the whole contract
between them, and every publishing call is a visible line at the place where the change happens.

Listeners run synchronously, inside the publisher's transaction (``publish`` opens a savepoint
when called outside one), so whatever they write -- alerts, notifications, email and webhook
delivery rows -- commits or rolls back together with the change itself: nothing is lost between
the two, and a listener's failure undoes the change rather than silently dropping the alert. A
listener therefore only writes rows and schedules work after commit; it never calls out over the
network. Events carry ids and plain values, never model instances, and arrive in batches (one
call per bulk change), so a listener can do its work in a constant number of queries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction


@dataclass(frozen=True, slots=True)
class ClearanceChanged:
    """A clearance moved from one status to another (``from_status`` is "" for a new one)."""

    vehicle_id: int
    from_status: str
    to_status: str
    at: datetime
    source: str
    detail: str = ""
    # HM's explanation kept on the clearance (a rejection reason) or the error in words.
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DefleetRefused:
    """High Mobility refused to revoke or cancel a vehicle's clearance (not a transient error)."""

    vehicle_id: int
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class TelemetryRecorded:
    """The newest telemetry of a vehicle was stored (older data arriving late is not told).

    Levels are fractions (0.0-1.0) as HM sends them; ``reported`` names the fields that came with
    a value, ``failures`` the fields HM reported a failure for, with the failure in words.
    """

    vehicle_id: int
    captured_at: datetime
    battery_level: float | None = None
    fuel_level: float | None = None
    reported: frozenset[str] = frozenset()
    failures: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImportFinished:
    """A confirmed CSV import ended (``status`` "done" or "failed")."""

    organization_id: int
    import_id: str
    file_name: str
    status: str
    finished_at: datetime
    counts: Mapping[str, int] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True, slots=True)
class VehiclesAdded:
    """Vehicles were created in bulk (``bulk_create`` sends no ``post_save``): their ids."""

    vehicle_ids: tuple[int, ...]
    at: datetime


Event = ClearanceChanged | DefleetRefused | TelemetryRecorded | ImportFinished | VehiclesAdded
Listener = Callable[[Sequence[Any]], None]

_listeners: dict[type, list[Listener]] = {}


def subscribe(event_type: type, listener: Listener) -> None:
    """Call ``listener(batch)`` with every published batch of ``event_type`` (once per listener)."""
    listeners = _listeners.setdefault(event_type, [])
    if listener not in listeners:
        listeners.append(listener)


def unsubscribe(event_type: type, listener: Listener) -> None:
    if listener in _listeners.get(event_type, []):
        _listeners[event_type].remove(listener)


def publish(events: Sequence[Event]) -> None:
    """Tell every listener, in the current transaction, grouped by event type in order."""
    if not events:
        return
    batches: dict[type, list[Event]] = {}
    for event in events:
        batches.setdefault(type(event), []).append(event)
    with transaction.atomic():
        for event_type, batch in batches.items():
            for listener in list(_listeners.get(event_type, ())):
                listener(batch)
