"""The change feed behind ``GET /api/v1/changes``: clearance changes, vehicles added and removed.

Written by listeners, in the transaction that made the change (fleet events for clearance moves
and bulk additions; Django's ``post_save``/``post_delete`` for single vehicles), one bulk insert
per batch.

**Commit order.** Ids are handed out when rows are inserted, not when they commit: transaction A
may insert id 10, transaction B id 11 and commit first; a poller that read up to 11 would never
see 10. So on PostgreSQL each entry carries its transaction's id (``pg_current_xact_id()``) and a
reader returns, in ``(txid, id)`` order, only entries below a *horizon*: the oldest transaction
still running in the reader's snapshot, leaving out transactions of other databases on the same
server (they cannot write this table; a test suite or a report elsewhere must not hold the feed
back). Entries below the horizon are final, and every transaction of this database that may
still write has a txid at or above it, so a cursor ``(txid, id)`` is never overtaken by an entry
committed later. A long transaction here holds the feed back for its duration; it never loses or
repeats an entry. On SQLite one writer at a time holds the database, so id order is commit order
(``txid`` stays 0).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from api.models import ChangeEntry, ChangeKind
from organizations.models import Organization
from vehicles import events as fleet_events
from vehicles.models import Vehicle

# The oldest in-progress xid of the snapshot that is not another database's (pg_stat_activity
# gives 32-bit xids; an xid of another database is never ours, so a stale list only errs on the
# safe side), else the snapshot's xmax.
_HORIZON_SQL = """(
    SELECT coalesce(
        (
            SELECT min(xip::text::bigint) FROM pg_snapshot_xip(s.snap) AS xip
            WHERE mod(xip::text::bigint, 4294967296) NOT IN (
                SELECT backend_xid::text::bigint FROM pg_stat_activity
                WHERE datname <> current_database() AND backend_xid IS NOT NULL
            )
        ),
        pg_snapshot_xmax(s.snap)::text::bigint
    )
    FROM (SELECT pg_current_snapshot() AS snap) AS s
)"""


def _current_txid() -> int:
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")
        return int(cursor.fetchone()[0])


def write(entries: Sequence[ChangeEntry]) -> None:
    """Store entries in the current transaction (a savepoint in autocommit), one insert."""
    if not entries:
        return
    with transaction.atomic():
        txid = _current_txid()
        for entry in entries:
            entry.txid = txid
        ChangeEntry.objects.bulk_create(entries, batch_size=1000)


def _write_for_vehicles(rows: Sequence[tuple[int, str, str, str, datetime, str, str]]) -> None:
    """Entries for vehicles known by id only, each ``(vehicle_id, kind, from_status, to_status,
    at, source, detail)``: the vehicle's organization and VIN are read by the same statement,
    so a whole batch costs ONE query (a bulk clearance change adds exactly one to its budget)."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        _write_for_vehicles_postgres(rows)
        return
    table = connection.ops.quote_name(ChangeEntry._meta.db_table)
    vehicles = connection.ops.quote_name(Vehicle._meta.db_table)
    for start in range(0, len(rows), 1000):
        chunk = rows[start : start + 1000]
        values = ", ".join(["(CAST(%s AS bigint), %s, %s, %s, %s, %s, %s)"] * len(chunk))
        params: list[Any] = []
        for vehicle_id, kind, from_status, to_status, when, source, detail in chunk:
            params += [
                vehicle_id,
                kind,
                from_status,
                to_status,
                connection.ops.adapt_datetimefield_value(when),
                source,
                detail[:2000],
            ]
        # Table names from the models; every value is a parameter.
        sql = (
            f"WITH x(vehicle_id, kind, from_status, to_status, at, source, detail) AS "  # noqa: S608
            f"(VALUES {values}) "
            f"INSERT INTO {table} (organization_id, txid, kind, vehicle_id, vin, from_status, "
            f"to_status, at, source, detail) "
            f"SELECT v.organization_id, 0, x.kind, v.id, v.vin, x.from_status, "
            f"x.to_status, x.at, x.source, x.detail "
            f"FROM x JOIN {vehicles} v ON v.id = x.vehicle_id"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _write_for_vehicles_postgres(
    rows: Sequence[tuple[int, str, str, str, datetime, str, str]],
) -> None:
    """The vehicle ids as one array, each with the number of its entry's values among the
    distinct ones (a bulk change repeats the same kind, statuses, time and detail on every row):
    a few parameters however many rows, in order. Quoting a VALUES list, or an array per
    column, of 2,000 rows took the driver longer than PostgreSQL took to insert them."""
    ids: list[int] = []
    groups: list[int] = []
    distinct: dict[tuple[str, str, str, datetime, str, str], int] = {}
    for vehicle_id, kind, from_status, to_status, when, source, detail in rows:
        values = (kind, from_status, to_status, when, source, detail[:2000])
        group = distinct.get(values)
        if group is None:
            group = distinct[values] = len(distinct) + 1
        ids.append(vehicle_id)
        groups.append(group)
    columns: list[list[Any]] = [list(column) for column in zip(*distinct, strict=True)]
    table = connection.ops.quote_name(ChangeEntry._meta.db_table)
    vehicles = connection.ops.quote_name(Vehicle._meta.db_table)
    sql = (
        f"INSERT INTO {table} (organization_id, txid, kind, vehicle_id, vin, from_status, "  # noqa: S608
        f"to_status, at, source, detail) "
        f"SELECT v.organization_id, pg_current_xact_id()::text::bigint, g.kind, v.id, v.vin, "
        f"g.from_status, g.to_status, g.at, g.source, g.detail "
        f"FROM unnest(string_to_array(%s, ',')::bigint[], string_to_array(%s, ',')::int[]) "
        f"WITH ORDINALITY AS x(vehicle_id, grp, n) "
        f"JOIN unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::text[], "
        f"%s::text[]) WITH ORDINALITY AS g(kind, from_status, to_status, at, source, detail, grp) "
        f"USING (grp) "
        f"JOIN {vehicles} v ON v.id = x.vehicle_id ORDER BY x.n"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [",".join(map(str, ids)), ",".join(map(str, groups)), *columns])


def on_clearance_changed(batch: Sequence[fleet_events.ClearanceChanged]) -> None:
    _write_for_vehicles(
        [
            (
                event.vehicle_id,
                ChangeKind.CLEARANCE,
                event.from_status,
                event.to_status,
                event.at,
                event.source,
                event.reason or event.detail,
            )
            for event in batch
        ]
    )


def on_vehicles_added(batch: Sequence[fleet_events.VehiclesAdded]) -> None:
    _write_for_vehicles(
        [
            (vehicle_id, ChangeKind.ADDED, "", "", event.at, "", "")
            for event in batch
            for vehicle_id in event.vehicle_ids
        ]
    )


def added(vehicles: Sequence[Vehicle], *, at: datetime | None = None) -> None:
    """Record vehicles created in bulk (no post_save), in the caller's transaction."""
    now = at or timezone.now()
    write(
        [
            ChangeEntry(
                organization_id=vehicle.organization_id,
                kind=ChangeKind.ADDED,
                vehicle_id=vehicle.pk,
                vin=vehicle.vin,
                at=now,
            )
            for vehicle in vehicles
        ]
    )


def _on_vehicle_saved(sender: Any, instance: Vehicle, created: bool, raw: bool, **kwargs) -> None:
    if created and not raw:
        added([instance])


def _on_vehicle_deleted(sender: Any, instance: Vehicle, origin: Any = None, **kwargs) -> None:
    if isinstance(origin, Organization):
        return  # the whole organization goes, its feed with it
    write(
        [
            ChangeEntry(
                organization_id=instance.organization_id,
                kind=ChangeKind.REMOVED,
                vehicle_id=instance.pk,
                vin=instance.vin,
                at=timezone.now(),
            )
        ]
    )


def listen() -> None:
    fleet_events.subscribe(fleet_events.ClearanceChanged, on_clearance_changed)
    fleet_events.subscribe(fleet_events.VehiclesAdded, on_vehicles_added)
    post_save.connect(_on_vehicle_saved, sender=Vehicle, dispatch_uid="api-feed-vehicle-added")
    post_delete.connect(
        _on_vehicle_deleted, sender=Vehicle, dispatch_uid="api-feed-vehicle-removed"
    )


# --- reading ----------------------------------------------------------------------------------


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Position:
    txid: int = 0
    id: int = 0

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"c1:{self.txid}:{self.id}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str | None) -> Position:
        if not cursor:
            return cls()
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            tag, txid, id_ = text.split(":")
            if tag != "c1":
                raise ValueError(tag)
            return cls(int(txid), int(id_))
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise BadCursor(cursor) from exc


def read(organization_id: int, after: Position, limit: int) -> tuple[list[ChangeEntry], Position]:
    """Up to ``limit`` entries after ``after`` in commit order, and the position to ask from
    next (``after`` itself when nothing new has committed)."""
    queryset = ChangeEntry.objects.filter(organization_id=organization_id).filter(
        Q(txid__gt=after.txid) | Q(txid=after.txid, id__gt=after.id)
    )
    if connection.vendor == "postgresql":
        queryset = queryset.filter(txid__lt=RawSQL(_HORIZON_SQL, []))  # noqa: S611 (constant)
    entries = list(queryset.order_by("txid", "id")[:limit])
    if not entries:
        return entries, after
    return entries, Position(entries[-1].txid, entries[-1].pk)


def latest(organization_id: int) -> Position:
    """The position after everything committed so far (to start following from now)."""
    queryset = ChangeEntry.objects.filter(organization_id=organization_id)
    if connection.vendor == "postgresql":
        queryset = queryset.filter(txid__lt=RawSQL(_HORIZON_SQL, []))  # noqa: S611 (constant)
    last = queryset.order_by("-txid", "-id").values_list("txid", "pk").first()
    return Position(*last) if last else Position()
