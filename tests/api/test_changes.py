"""GET /changes: one feed of clearance changes and vehicles added/removed, read in commit order,
so a poller never misses or double-counts a change, also under concurrent transactions."""

import random
import threading
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone

from api import feed
from api.models import ChangeEntry, ChangeKind
from clearance import state
from clearance.models import ClearanceStatus
from tests.api.conftest import vin
from tests.factories import ClearanceFactory, VehicleFactory
from vehicles.models import Vehicle

# The feed only shows what other transactions committed: these tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)


def _follow(client, cursor=None, limit=100):
    """Everything new since ``cursor``: (items, next cursor)."""
    items = []
    while True:
        page = client.get(
            "/api/v1/changes", {"limit": limit, **({"cursor": cursor} if cursor else {})}
        ).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return items, cursor


def test_onboarding_and_defleet_appear_once_in_order(reader, writer, organization, credential):
    writer.post(
        "/api/v1/vehicles", {"vehicles": [{"vin": vin(i), "brand": "vw"} for i in range(3)]}
    )
    items, cursor = _follow(reader, limit=2)
    kinds = [(i["kind"], i["vin"], i["to_status"]) for i in items]
    assert kinds[:3] == [("vehicle.added", vin(i), None) for i in range(3)]
    assert kinds[3:] == [("clearance.changed", vin(i), "queued") for i in range(3)]
    again, same = _follow(reader, cursor)
    assert again == [] and same == cursor

    vehicle = Vehicle.objects.get(vin=vin(0))
    state.apply_status(vehicle.clearance, "pending", at=None, source="api")
    state.apply_status(vehicle.clearance, "approved", at=None, source="webhook")
    vehicle.delete()
    items, cursor = _follow(reader, cursor)
    assert [(i["kind"], i["from_status"], i["to_status"]) for i in items] == [
        ("clearance.changed", "queued", "pending"),
        ("clearance.changed", "pending", "approved"),
        ("vehicle.removed", None, None),
    ]
    assert items[1]["source"] == "webhook"


def test_another_organizations_changes_are_not_in_the_feed(reader, other_organization):
    VehicleFactory(organization=other_organization, vin=vin(1))
    assert _follow(reader)[0] == []


def test_start_now_skips_the_past(reader, organization):
    VehicleFactory(organization=organization, vin=vin(1))
    page = reader.get("/api/v1/changes", {"start": "now"}).json()
    assert page["items"] == []
    VehicleFactory(organization=organization, vin=vin(2))
    items, _ = _follow(reader, page["next_cursor"])
    assert [i["vin"] for i in items] == [vin(2)]


def test_bad_cursor_is_400(reader):
    response = reader.get("/api/v1/changes", {"cursor": "nope!"})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "cursor"


def _entry(organization, n):
    return ChangeEntry(
        organization=organization,
        kind=ChangeKind.ADDED,
        vehicle_id=n,
        vin=vin(n),
        at=timezone.now(),
    )


def test_an_earlier_transaction_committing_later_is_not_overtaken(reader, organization):
    """A inserts first and commits last: a poller that already saw B must still get A."""
    if connection.vendor == "sqlite":
        _sqlite_has_one_writer_at_a_time(organization)
        return
    a_wrote, b_committed = threading.Event(), threading.Event()

    def transaction_a():
        with transaction.atomic():
            feed.write([_entry(organization, 1)])
            a_wrote.set()
            b_committed.wait(10)
        connection.close()

    thread = threading.Thread(target=transaction_a)
    thread.start()
    a_wrote.wait(10)
    feed.write([_entry(organization, 2)])  # B, autocommit: a larger id, committed first
    b_committed.set()
    first, cursor = _follow(reader)  # may run before or after A commits
    thread.join()
    rest, _ = _follow(reader, cursor)
    vins = [i["vin"] for i in first + rest]
    assert sorted(vins) == [vin(1), vin(2)]
    assert vins == [vin(1), vin(2)]  # commit-safe order: A's transaction is older


def _sqlite_has_one_writer_at_a_time(organization):
    """What makes id order commit order on SQLite: while A's transaction is open, nobody else
    can insert (B would wait for A's commit, and so get the larger id after it)."""
    import sqlite3

    a_wrote, release = threading.Event(), threading.Event()

    def transaction_a():
        with transaction.atomic():
            feed.write([_entry(organization, 1)])
            a_wrote.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=transaction_a)
    thread.start()
    a_wrote.wait(10)
    other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.1)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute(
                "INSERT INTO api_changeentry (organization_id, txid, kind, vehicle_id, vin, "
                "from_status, to_status, at, source, detail) "
                "VALUES (?, 0, 'vehicle.added', 2, 'X', '', '', '2026-01-01', '', '')",
                [organization.pk],
            )
    finally:
        other.close()
        release.set()
        thread.join()


def test_pollers_miss_nothing_and_repeat_nothing_under_concurrent_writers(reader, organization):
    writers, per_writer = 4, 25
    done = threading.Event()

    def write(worker):
        rng = random.Random(worker)
        for n in range(per_writer):
            with transaction.atomic():
                feed.write([_entry(organization, worker * 1000 + n)])
                time.sleep(rng.random() / 100)  # hold the transaction open a little
        connection.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    seen, cursor = [], None
    while any(thread.is_alive() for thread in threads):
        items, cursor = _follow(reader, cursor, limit=7)
        seen += items
    for thread in threads:
        thread.join()
    done.set()
    items, cursor = _follow(reader, cursor, limit=7)
    seen += items
    vins = [i["vin"] for i in seen]
    assert len(vins) == writers * per_writer
    assert len(set(vins)) == len(vins)


def test_bulk_imported_vehicles_are_in_the_feed(organization, reader):
    from vehicles import events as fleet_events

    vehicles = Vehicle.objects.bulk_create(
        [Vehicle(organization=organization, vin=vin(i), brand="vw") for i in range(3)]
    )
    fleet_events.publish(
        [fleet_events.VehiclesAdded(tuple(v.pk for v in vehicles), timezone.now())]
    )
    items, _ = _follow(reader)
    assert [i["vin"] for i in items] == [vin(0), vin(1), vin(2)]


def test_clearance_moves_recorded_in_bulk_are_in_the_feed(organization, credential, reader):
    clearances = [
        ClearanceFactory(
            vehicle=VehicleFactory(organization=organization, vin=vin(i)),
            credential=credential,
            status=ClearanceStatus.PENDING,
        )
        for i in range(3)
    ]
    _, cursor = _follow(reader)
    with transaction.atomic():
        pairs = [
            (c, state.Change(status="approved", source="poll", learned_at=timezone.now()))
            for c in clearances
        ]
        state.apply_changes(pairs)
    items, _ = _follow(reader, cursor)
    assert [(i["vin"], i["to_status"]) for i in items] == [(vin(i), "approved") for i in range(3)]


def test_deleting_an_organization_with_vehicles_leaves_no_feed_behind(organization, reader):
    VehicleFactory(organization=organization, vin=vin(1))
    organization.delete()
    assert not ChangeEntry.objects.exists()
