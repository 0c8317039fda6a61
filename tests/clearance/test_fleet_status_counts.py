"""The fleet counters kept by the database (migration clearance 0004): equal to counting the
vehicles, whoever changes them and however (bulk statements, raw SQL, cascades), also when two
transactions change statuses at once."""

import threading

import pytest
from django.db import connection, transaction
from django.db.models import Count

from clearance.models import Clearance, FleetStatusCount
from clearance.selectors import fleet_status_counts, fold_fleet_status_counts
from clearance.statuses import NOT_REQUESTED
from clearance.statuses import ORDER as STATUS_ORDER
from tests.factories import CredentialFactory, OrganizationFactory, VehicleFactory
from vehicles.models import Vehicle


def assert_counts_true(organization) -> dict[str, int]:
    """The kept counts equal the organization's vehicles counted one by one; returns the
    non-zero counts per status."""
    rows = (
        Vehicle.objects.filter(organization=organization)
        .values_list("clearance__status")
        .annotate(n=Count("id"))
        .order_by()
    )
    truth = {status or NOT_REQUESTED: n for status, n in rows}
    counts = fleet_status_counts(organization)
    known = (*STATUS_ORDER, NOT_REQUESTED)
    assert counts["total"] == sum(truth.values())
    assert counts["other"] == sum(n for status, n in truth.items() if status not in known)
    kept = {status: counts[status] for status in known if counts[status]}
    assert kept == {status: n for status, n in truth.items() if status in known}
    return kept


def make_fleet(organization, statuses, *, start=0, credential=None):
    credential = credential or CredentialFactory(organization=organization)
    vehicles = Vehicle.objects.bulk_create(
        Vehicle(organization=organization, vin=f"WVWZZZ1KZ{start + i:08d}", brand="bmw")
        for i in range(len(statuses))
    )
    Clearance.objects.bulk_create(
        Clearance(vehicle=v, credential=credential, status=s)
        for v, s in zip(vehicles, statuses, strict=True)
        if s is not None
    )
    return vehicles


@pytest.mark.django_db
def test_counts_follow_every_kind_of_change(organization, other_organization):
    vehicles = make_fleet(organization, ["queued"] * 4 + ["pending"] * 3 + [None] * 2)
    make_fleet(other_organization, ["approved"] * 5, start=100)
    assert assert_counts_true(organization) == {"queued": 4, "pending": 3, NOT_REQUESTED: 2}

    # A bulk UPDATE, a single save, a status HM sent that we do not know yet.
    Clearance.objects.filter(vehicle__organization=organization, status="queued").update(
        status="pending"
    )
    clearance = Clearance.objects.get(vehicle=vehicles[4])
    clearance.status = "approved"
    clearance.save()
    Clearance.objects.filter(vehicle=vehicles[5]).update(status="paused_by_oem")
    counts = fleet_status_counts(organization)
    assert (counts["pending"], counts["approved"], counts["other"]) == (5, 1, 1)
    assert_counts_true(organization)

    # A clearance created for a vehicle that had none; a clearance deleted; raw SQL.
    Clearance.objects.create(vehicle=vehicles[7], status="queued")
    Clearance.objects.filter(vehicle=vehicles[0]).delete()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE clearance_clearance SET status = 'rejected' WHERE vehicle_id = %s",
            [vehicles[1].pk],
        )
    assert_counts_true(organization)

    # Vehicles deleted with their clearance (Django's cascade), or without one; a vehicle
    # moved to another organization takes its status along.
    vehicles[2].delete()
    vehicles[8].delete()
    Vehicle.objects.filter(pk=vehicles[3].pk).update(organization=other_organization)
    assert assert_counts_true(organization)["pending"] == 1
    assert fleet_status_counts(other_organization)["pending"] == 1
    assert_counts_true(other_organization)

    # Unchanged statuses cost no count rows.
    rows = FleetStatusCount.objects.count()
    Clearance.objects.filter(vehicle__organization=organization).update(description="x")
    assert FleetStatusCount.objects.count() == rows

    # The whole fleet deleted at once: nothing of it is counted any more.
    Vehicle.objects.filter(organization=organization).delete()
    assert fleet_status_counts(organization)["total"] == 0
    assert fleet_status_counts(other_organization)["total"] == 6


@pytest.mark.django_db
def test_a_new_organization_counts_nothing(organization):
    counts = fleet_status_counts(organization)
    assert counts["total"] == counts["in_flight"] == counts[NOT_REQUESTED] == 0
    VehicleFactory(organization=organization)
    assert fleet_status_counts(organization)[NOT_REQUESTED] == 1


@pytest.mark.django_db
def test_many_small_changes_stay_few_rows(organization):
    vehicles = make_fleet(organization, ["pending"] * 30)
    for round_ in range(60):  # 300 statements, never read in between
        for vehicle in vehicles[:5]:
            status = "approved" if round_ % 2 == 0 else "pending"
            Clearance.objects.filter(vehicle=vehicle).update(status=status)
    rows = FleetStatusCount.objects.filter(organization=organization)
    # PostgreSQL folds at every 64th statement (2 rows of differences per statement here).
    assert rows.count() <= 2 * 64 + 3
    assert assert_counts_true(organization) == {"pending": 30}
    fold_fleet_status_counts(organization)
    # One row per status (SQLite keeps a status that went back to zero, at zero).
    assert rows.exclude(vehicles=0).count() == 1 and rows.count() <= 3
    for vehicle in vehicles[:7]:
        Clearance.objects.filter(vehicle=vehicle).update(status="approved")
    assert assert_counts_true(organization) == {"approved": 7, "pending": 23}


# --- two transactions at once -------------------------------------------------------------------


class Change(threading.Thread):
    """Change statuses in a transaction of its own (its own connection) and keep it open until
    released: `changed` is set once the UPDATE is done."""

    def __init__(self, organization, vins, status):
        super().__init__(daemon=True)
        self.organization, self.vins, self.status = organization, vins, status
        self.changed, self.release = threading.Event(), threading.Event()
        self.error: BaseException | None = None

    def run(self):
        try:
            with transaction.atomic():
                Clearance.objects.filter(
                    vehicle__organization=self.organization, vehicle__vin__in=self.vins
                ).update(status=self.status)
                self.changed.set()
                assert self.release.wait(30), "never released"
        except BaseException as error:  # reported by finish()
            self.error = error
        finally:
            connection.close()

    def finish(self):
        self.release.set()
        self.join(30)
        assert not self.is_alive() and self.error is None, self.error


def open_at_once(first: Change, second: Change) -> bool:
    """Start both; True when both transactions are open with their changes made (PostgreSQL).
    SQLite has one writer at a time: the second then waits for the first to commit."""
    first.start()
    assert first.changed.wait(30)
    second.start()
    return second.changed.wait(2 if connection.vendor == "postgresql" else 0.5)


@pytest.mark.django_db(transaction=True)
def test_two_transactions_changing_different_vehicles_at_once():
    organization = OrganizationFactory()
    vehicles = make_fleet(organization, ["pending"] * 10 + ["approved"] * 10)
    vins = [v.vin for v in vehicles]
    approve = Change(organization, vins[:6], "approved")  # 6 pending -> approved
    revoke = Change(organization, vins[10:14], "revoking")  # 4 approved -> revoking
    both_open = open_at_once(approve, revoke)
    if connection.vendor == "postgresql":
        assert both_open, "the two transactions waited on each other"
        # Uncommitted changes are not counted, and folding meanwhile loses nothing.
        fold_fleet_status_counts(organization)
        assert assert_counts_true(organization) == {"pending": 10, "approved": 10}
    approve.finish()
    revoke.finish()
    assert assert_counts_true(organization) == {"pending": 4, "approved": 12, "revoking": 4}


@pytest.mark.django_db(transaction=True)
def test_two_transactions_changing_the_same_vehicles_at_once():
    organization = OrganizationFactory()
    vehicles = make_fleet(organization, ["pending"] * 8)
    vins = [v.vin for v in vehicles]
    approve = Change(organization, vins, "approved")
    # Waits for the first one's row locks, then changes what the first one committed.
    reject = Change(organization, vins[:3], "rejected")
    assert not open_at_once(approve, reject)
    approve.finish()
    assert reject.changed.wait(30)
    assert assert_counts_true(organization) == {"approved": 8}  # the second is still open
    reject.finish()
    assert assert_counts_true(organization) == {"approved": 5, "rejected": 3}
    assert set(Clearance.objects.values_list("status", flat=True)) == {"approved", "rejected"}
