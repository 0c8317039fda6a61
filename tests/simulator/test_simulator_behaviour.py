"""Seed VIN behaviours and delete rules, computed from time (pure functions)."""

from datetime import UTC, datetime, timedelta

import pytest

from simulator.behaviour import (
    ODOMETER_MISMATCH_REASON,
    DeleteRefused,
    Facts,
    delete_action_for,
    next_change_at,
    status_at,
    timeline,
)

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def facts(vin, brand="sandbox", odometer=None, **kwargs):
    return Facts(
        vin=vin,
        brand=brand,
        requested_at=T0,
        approval_delay=timedelta(seconds=5),
        removal_delay=timedelta(seconds=5),
        control_odometer_km=odometer,
        **kwargs,
    )


def test_ordinary_vin_approved_after_delay():
    f = facts("WBADT43452G296403")
    assert status_at(f, T0 + timedelta(seconds=4)).status == "pending"
    assert status_at(f, T0 + timedelta(seconds=5)).status == "approved"
    assert next_change_at(f, T0) == T0 + timedelta(seconds=5)
    assert next_change_at(f, T0 + timedelta(seconds=6)) is None


def test_seed_1_needs_odometer_2050_km():
    assert (
        status_at(facts("2HM00000000000001", odometer=2050), T0 + timedelta(minutes=1)).status
        == "approved"
    )
    rejected = status_at(facts("2HM00000000000001"), T0 + timedelta(minutes=1))
    assert rejected.status == "rejected" and rejected.reason == ODOMETER_MISMATCH_REASON
    assert (
        status_at(facts("2HM00000000000001", odometer=1999), T0 + timedelta(minutes=1)).status
        == "rejected"
    )


def test_seed_2_pending_forever():
    f = facts("2HM00000000000002")
    assert status_at(f, T0 + timedelta(days=365)).status == "pending"
    assert next_change_at(f, T0) is None


def test_seed_3_rejected_after_three_hours():
    f = facts("2HM00000000000003")
    assert status_at(f, T0 + timedelta(hours=2, minutes=59)).status == "pending"
    entry = status_at(f, T0 + timedelta(hours=3))
    assert entry.status == "rejected" and entry.reason
    assert [e.status for e in timeline(f, T0 + timedelta(hours=4))] == ["pending", "rejected"]


def test_revoke_after_approval():
    approved_at = T0 + timedelta(seconds=5)
    f = facts("WBADT43452G296403")
    assert delete_action_for(f, approved_at) == "revoking"
    deleted = facts(
        "WBADT43452G296403", deleted_at=T0 + timedelta(minutes=1), delete_action="revoking"
    )
    assert [e.status for e in timeline(deleted, T0 + timedelta(minutes=2))] == [
        "pending",
        "approved",
        "revoking",
        "revoked",
    ]
    with pytest.raises(DeleteRefused) as refused:
        delete_action_for(deleted, T0 + timedelta(minutes=1, seconds=1))
    assert refused.value.status_code == 409 and "transition" in refused.value.detail
    with pytest.raises(DeleteRefused) as removed:
        delete_action_for(deleted, T0 + timedelta(minutes=2))
    assert removed.value.detail == "Clearance is already removed"


def test_cancel_rules_for_pending():
    pending = facts("2HM00000000000002", brand="bmw")
    with pytest.raises(DeleteRefused) as unsupported:
        delete_action_for(pending, T0 + timedelta(days=2))
    assert unsupported.value.status_code == 422
    assert unsupported.value.detail == "cancellation is not supported for this vin"
    mercedes = facts("2HM00000000000002", brand="mercedes-benz")
    with pytest.raises(DeleteRefused) as early:
        delete_action_for(mercedes, T0 + timedelta(hours=5))
    assert early.value.title == "too early"
    assert delete_action_for(mercedes, T0 + timedelta(days=1, seconds=1)) == "canceling"
