"""The state machine of DESIGN.md §4: every move, late / duplicated / reordered news, unknown
statuses, and the bulk variant's query budget."""

from datetime import UTC, datetime, timedelta
from itertools import product

import pytest
from django.utils import timezone

from clearance import changelog, state
from clearance.hm import ChangelogEntry, FleetVehicle
from clearance.hm import ClearanceStatus as HMStatus
from clearance.models import Clearance, ClearanceEvent, ClearanceStatus
from clearance.state import Change, Outcome, Source
from tests.factories import ClearanceFactory

S = ClearanceStatus
ALL = [s.value for s in S]

EXPECTED_ALLOWED = {
    ("queued", "pending"),
    ("queued", "approved"),
    ("queued", "rejected"),
    ("queued", "error"),
    ("pending", "approved"),
    ("pending", "rejected"),
    ("pending", "canceling"),
    ("pending", "canceled"),
    ("pending", "error"),
    ("approved", "revoking"),
    ("approved", "revoked"),
    ("revoking", "revoked"),
    ("canceling", "canceled"),
    ("rejected", "queued"),
    ("revoked", "queued"),
    ("canceled", "queued"),
    ("error", "queued"),
}

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def hm_time(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(("before", "after"), list(product(ALL, ALL)))
def test_can_move_matches_the_design(before, after):
    assert state.can_move(before, after) is ((before, after) in EXPECTED_ALLOWED)


@pytest.mark.django_db
@pytest.mark.parametrize(("before", "after"), list(product(ALL, ALL)))
def test_apply_status_every_pair(before, after):
    clearance = ClearanceFactory(status=before)
    applied = state.apply_status(clearance, after, at=None, source=Source.POLL)
    clearance.refresh_from_db()
    allowed = (before, after) in EXPECTED_ALLOWED
    assert applied is allowed
    assert clearance.status == (after if allowed else before)
    events = list(ClearanceEvent.objects.filter(clearance=clearance))
    if allowed:
        assert [(e.from_status, e.to_status, e.source) for e in events] == [(before, after, "poll")]
    else:
        assert events == []


@pytest.mark.django_db
def test_applied_move_records_times_actor_and_description(owner_user):
    clearance = ClearanceFactory(status="pending")
    learned = timezone.now()
    assert state.apply_status(
        clearance,
        "rejected",
        at=hm_time(5),
        source=Source.WEBHOOK,
        actor=owner_user,
        detail="owner said no",
        description="owner said no",
        learned_at=learned,
    )
    clearance.refresh_from_db()
    assert clearance.hm_changed_at == hm_time(5)
    assert clearance.status_known_at == learned
    assert clearance.status_changed_at == hm_time(5)
    assert clearance.description == "owner said no"
    event = clearance.events.get()
    assert (event.at, event.actor, event.detail) == (hm_time(5), owner_user, "owner said no")


@pytest.mark.django_db
def test_duplicate_is_ignored_but_keeps_hm_newer_time():
    clearance = ClearanceFactory(status="pending", hm_changed_at=hm_time(0))
    assert not state.apply_status(clearance, "pending", at=hm_time(1), source=Source.POLL)
    clearance.refresh_from_db()
    assert clearance.hm_changed_at == hm_time(1)
    assert not clearance.events.exists()
    # Same webhook twice: second time nothing at all.
    assert state.apply_status(clearance, "approved", at=hm_time(2), source=Source.WEBHOOK)
    assert not state.apply_status(clearance, "approved", at=hm_time(2), source=Source.WEBHOOK)
    assert clearance.events.count() == 1


@pytest.mark.django_db
def test_late_news_by_hm_time_is_ignored():
    clearance = ClearanceFactory(status="approved", hm_changed_at=hm_time(10))
    # A revocation HM dated before the approval we applied: stale.
    assert not state.apply_status(clearance, "revoked", at=hm_time(9), source=Source.POLL)
    assert not state.apply_status(clearance, "revoked", at=hm_time(10), source=Source.POLL)
    assert state.apply_status(clearance, "revoked", at=hm_time(11), source=Source.POLL)


@pytest.mark.django_db
def test_late_news_by_our_clock_is_ignored():
    now = timezone.now()
    clearance = ClearanceFactory(status="revoking", status_known_at=now)
    # A webhook received before the defleet answer, processed after it: stale.
    decision = state.apply_change(
        clearance,
        Change(status="revoked", source=Source.WEBHOOK, learned_at=now - timedelta(seconds=1)),
    )
    assert decision.outcome is Outcome.STALE
    assert clearance.status == "revoking"


@pytest.mark.django_db
def test_reordered_webhooks_end_in_the_newest_state():
    received = timezone.now()
    clearance = ClearanceFactory(status="queued", status_known_at=received - timedelta(minutes=1))
    pending = Change(status="pending", source=Source.WEBHOOK, learned_at=received)
    approved = Change(
        status="approved", source=Source.WEBHOOK, learned_at=received + timedelta(seconds=1)
    )
    revoking = Change(
        status="revoking", source=Source.WEBHOOK, learned_at=received + timedelta(seconds=2)
    )
    # Delivered out of order: revoking can't come from queued, approved can.
    assert state.apply_change(clearance, approved).outcome is Outcome.APPLIED
    assert state.apply_change(clearance, pending).outcome is Outcome.STALE
    assert state.apply_change(clearance, revoking).outcome is Outcome.APPLIED
    assert state.apply_change(clearance, approved).outcome is Outcome.STALE
    clearance.refresh_from_db()
    assert clearance.status == "revoking"
    assert [e.to_status for e in clearance.events.order_by("id")] == ["approved", "revoking"]


@pytest.mark.django_db
def test_reordered_hm_dated_news_in_any_order_ends_right():
    import itertools

    moves = [("pending", 1), ("approved", 2), ("revoking", 3), ("revoked", 4)]
    for order in itertools.permutations(moves):
        # After our request was answered (pending, undated), webhooks arrive in any order.
        clearance = ClearanceFactory(status="pending")
        for status, minute in order:
            state.apply_status(clearance, status, at=hm_time(minute), source=Source.WEBHOOK)
        clearance.refresh_from_db()
        assert clearance.status == "revoked", order
        assert clearance.hm_changed_at == hm_time(4)


@pytest.mark.django_db
def test_unknown_status_is_stored_raw_and_logged(caplog):
    clearance = ClearanceFactory(status="pending")
    with caplog.at_level("WARNING"):
        assert state.apply_status(clearance, "Suspended_By_OEM", at=None, source=Source.POLL)
    clearance.refresh_from_db()
    assert clearance.status == "Suspended_By_OEM"
    assert "unknown status" in caplog.text
    event = clearance.events.get()
    assert "does not know" in event.detail
    # From an unknown status, any HM status is accepted again; queued (re-onboard) too.
    assert state.apply_status(clearance, "APPROVED", at=None, source=Source.POLL)
    clearance.refresh_from_db()
    assert clearance.status == "approved"


@pytest.mark.django_db
def test_unknown_then_reonboard():
    clearance = ClearanceFactory(status="weird")
    assert state.apply_status(clearance, "queued", at=None, source=Source.USER)


@pytest.mark.django_db
def test_empty_status_refused():
    clearance = ClearanceFactory(status="pending")
    assert not state.apply_status(clearance, "", at=None, source=Source.POLL)
    assert not state.apply_status(clearance, None, at=None, source=Source.POLL)


@pytest.mark.django_db
def test_reonboard_clears_description_and_error():
    clearance = ClearanceFactory(status="rejected", description="odometer mismatch", last_error="x")
    assert state.apply_status(clearance, "queued", at=None, source=Source.USER)
    clearance.refresh_from_db()
    assert (clearance.description, clearance.last_error) == ("", "")


@pytest.mark.django_db
def test_bulk_variant_constant_queries(django_assert_max_num_queries):
    rows = [ClearanceFactory(status="pending") for _ in range(30)]
    pairs = [(row, Change(status="approved", source=Source.POLL, at=hm_time(1))) for row in rows]
    # 4, and 1 for the fleet events' listeners (vehicles, and whether any rule or endpoint
    # listens: none here), and 1 for the API's change feed (one INSERT for the batch).
    with django_assert_max_num_queries(6):
        result = state.apply_changes(pairs)
    assert result.applied == 30
    assert Clearance.objects.filter(status="approved").count() == 30
    assert ClearanceEvent.objects.filter(to_status="approved").count() == 30


def fleet_vehicle(vin, status, entries):
    return FleetVehicle(
        vin=vin,
        status=HMStatus.parse(status),
        changelog=[
            ChangelogEntry(timestamp=hm_time(m), status=HMStatus.parse(s), reason=r)
            for s, m, r in entries
        ],
    )


@pytest.mark.django_db
def test_changelog_replay_records_every_step():
    clearance = ClearanceFactory(status="pending", requested_at=timezone.now())
    vehicle = fleet_vehicle(
        clearance.vehicle.vin,
        "revoked",
        [("pending", 0, None), ("approved", 1, None), ("revoking", 2, None), ("revoked", 3, None)],
    )
    changes = changelog.changes_from_hm(clearance, vehicle, learned_at=timezone.now())
    result = state.apply_changes([(clearance, c) for c in changes])
    assert [(b, a) for _, b, a in result.moves] == [
        ("pending", "approved"),
        ("approved", "revoking"),
        ("revoking", "revoked"),
    ]
    clearance.refresh_from_db()
    assert clearance.hm_changed_at == hm_time(3)


@pytest.mark.django_db
def test_changelog_replay_only_current_round():
    clearance = ClearanceFactory(status="pending", requested_at=timezone.now())
    vehicle = fleet_vehicle(
        clearance.vehicle.vin,
        "pending",
        [("pending", 0, None), ("rejected", 1, "no"), ("pending", 5, None)],
    )
    changes = changelog.changes_from_hm(clearance, vehicle, learned_at=timezone.now())
    assert [c.status for c in changes] == ["pending"]


@pytest.mark.django_db
def test_queued_row_takes_hm_status_only_when_our_request_reached_hm():
    learned = timezone.now()
    fresh = ClearanceFactory(status="queued")
    vehicle = fleet_vehicle(fresh.vehicle.vin, "pending", [("pending", 0, None)])
    assert [c.status for c in changelog.changes_from_hm(fresh, vehicle, learned_at=learned)] == [
        "pending"
    ]
    # Re-onboarded after a revocation: the old round's "revoked" is not news.
    again = ClearanceFactory(status="queued", requested_at=learned - timedelta(days=3))
    old = fleet_vehicle(again.vehicle.vin, "revoked", [("approved", 0, None), ("revoked", 1, None)])
    assert changelog.changes_from_hm(again, old, learned_at=learned) == []


@pytest.mark.django_db
def test_dated_news_after_everything_we_know_may_skip_steps():
    clearance = ClearanceFactory(status="pending", hm_changed_at=hm_time(0))
    # Undated: the graph decides.
    assert not state.apply_status(clearance, "revoked", at=None, source=Source.WEBHOOK)
    # Dated by HM after our last change: HM's timeline wins, recorded as such.
    assert state.apply_status(clearance, "revoked", at=hm_time(5), source=Source.WEBHOOK)
    event = clearance.events.get()
    assert "steps in between were missed" in event.detail
    # Never out of the local queued state.
    queued = ClearanceFactory(status="queued")
    assert not state.apply_status(queued, "revoked", at=hm_time(5), source=Source.POLL)
