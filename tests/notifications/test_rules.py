"""Alert rules evaluated where the news happens: once per vehicle and condition, with hysteresis,
scoped to a tag, and the periodic evaluation with a constant number of queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clearance import state
from clearance.models import ClearanceEvent
from notifications import evaluation
from notifications import rules as rule_services
from notifications.models import Alert, Notification, RuleKind
from telemetry import services as telemetry_store
from telemetry.parse import parse_rest
from tests.factories import ClearanceFactory, MembershipFactory, VehicleFactory
from tests.notifications.conftest import make_rule
from vehicles import events as fleet_events

pytestmark = pytest.mark.django_db


def move(clearance, status, source="webhook", description=None):
    return state.apply_status(clearance, status, at=None, source=source, description=description)


def open_alerts(rule):
    return Alert.objects.filter(rule=rule, cleared_at__isnull=True)


def reading(vehicle, *, battery=None, fuel=None, failure_field=None, minutes=0):
    """Store a pulled snapshot with these values, `minutes` after a fixed start."""
    at = (datetime(2026, 11, 30, 8, 0, tzinfo=UTC) + timedelta(minutes=minutes)).isoformat()
    payload: dict = {"vin": vehicle.vin}
    if battery is not None:
        payload["charging"] = {"battery_level": {"data": battery, "timestamp": at}}
    if fuel is not None:
        payload["diagnostics"] = {"fuel_level": {"data": fuel, "timestamp": at}}
    if failure_field == "battery_level":
        payload["charging"] = {
            "battery_level": {
                "timestamp": at,
                "failure": {"reason": "execution_timeout", "description": "No answer"},
            }
        }
    return telemetry_store.record_snapshot(vehicle, parse_rest(payload), source="pull")


def test_a_rejection_fires_once_and_again_only_after_re_onboarding(organization, owner_user):
    rule = make_rule(organization, RuleKind.CLEARANCE_REJECTED)
    clearance = ClearanceFactory(vehicle__organization=organization, status="pending")
    move(clearance, "rejected", description="The owner did not confirm.")
    (alert,) = open_alerts(rule)
    assert alert.title == "Clearance rejected"
    assert alert.detail == "The owner did not confirm."
    assert Notification.objects.filter(user=owner_user, alert=alert).count() == 1
    # The same news again (a repeated webhook, a sync) fires nothing more.
    move(clearance, "rejected", source="poll")
    assert Alert.objects.filter(rule=rule).count() == 1
    # Re-onboarded (queued) clears it; rejected again fires again.
    move(clearance, "queued", source="user")
    assert not open_alerts(rule).exists()
    move(clearance, "pending", source="api")
    move(clearance, "rejected")
    assert Alert.objects.filter(rule=rule).count() == 2
    assert open_alerts(rule).count() == 1


def test_revoked_by_the_carmaker_is_not_the_end_of_our_own_defleet(organization):
    rule = make_rule(organization, RuleKind.CLEARANCE_REVOKED)
    ours = ClearanceFactory(vehicle__organization=organization, status="approved")
    theirs = ClearanceFactory(vehicle__organization=organization, status="approved")
    move(ours, "revoking", source="user")
    move(ours, "revoked")
    move(theirs, "revoked")
    assert [a.vehicle_id for a in Alert.objects.filter(rule=rule)] == [theirs.vehicle_id]


def test_an_error_fires_with_the_words_on_the_clearance(organization):
    rule = make_rule(organization, RuleKind.CLEARANCE_ERROR)
    clearance = ClearanceFactory(vehicle__organization=organization, status="queued")
    clearance.last_error = "High Mobility refused the VIN: vin should be 17 character(s)"
    clearance.save()
    move(clearance, "error", source="api")
    (alert,) = open_alerts(rule)
    assert "17 character" in alert.detail


def test_bulk_moves_fire_in_a_constant_number_of_queries(organization):
    make_rule(organization, RuleKind.CLEARANCE_REJECTED)
    MembershipFactory(organization=organization)
    counts = []
    for size in (3, 30):
        rows = [
            ClearanceFactory(vehicle__organization=organization, status="pending")
            for _ in range(size)
        ]
        pairs = [(row, state.Change(status="rejected", source="poll")) for row in rows]
        with CaptureQueriesContext(connection) as queries:
            state.apply_changes(pairs)
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert Alert.objects.count() == 33


def test_a_rule_for_a_tag_ignores_other_vehicles(organization):
    vans = make_rule(organization, RuleKind.CLEARANCE_REJECTED, name="Vans", tag_key="vans")
    berlin = make_rule(
        organization,
        RuleKind.CLEARANCE_REJECTED,
        name="Berlin",
        tag_key="depot",
        tag_value="berlin",
    )
    van = ClearanceFactory(
        vehicle__organization=organization, vehicle__tags={"vans": ""}, status="pending"
    )
    munich = ClearanceFactory(
        vehicle__organization=organization, vehicle__tags={"depot": "munich"}, status="pending"
    )
    in_berlin = ClearanceFactory(
        vehicle__organization=organization, vehicle__tags={"depot": "berlin"}, status="pending"
    )
    for clearance in (van, munich, in_berlin):
        move(clearance, "rejected")
    assert [a.vehicle_id for a in Alert.objects.filter(rule=vans)] == [van.vehicle_id]
    assert [a.vehicle_id for a in Alert.objects.filter(rule=berlin)] == [in_berlin.vehicle_id]


def test_another_organizations_rule_never_fires(organization, other_organization):
    make_rule(other_organization, RuleKind.CLEARANCE_REJECTED)
    clearance = ClearanceFactory(vehicle__organization=organization, status="pending")
    move(clearance, "rejected")
    assert not Alert.objects.exists()


def test_a_rule_that_is_off_fires_nothing(organization):
    make_rule(organization, RuleKind.CLEARANCE_REJECTED, enabled=False)
    move(ClearanceFactory(vehicle__organization=organization, status="pending"), "rejected")
    assert not Alert.objects.exists()


def test_battery_hysteresis_no_storm_at_the_threshold(organization):
    rule = make_rule(organization, RuleKind.BATTERY_LOW, threshold=20)
    vehicle = VehicleFactory(organization=organization)
    levels = [0.25, 0.19, 0.21, 0.18, 0.22, 0.19, 0.24, 0.26, 0.19]
    for minute, level in enumerate(levels):
        reading(vehicle, battery=level, minutes=minute)
    fired = list(Alert.objects.filter(rule=rule).order_by("pk"))
    # Fired at 19 %, stayed open while it hovered between 18 and 24 %, cleared at 26 % (20 + 5
    # points), fired again at 19 %.
    assert len(fired) == 2
    assert fired[0].cleared_at is not None and fired[1].cleared_at is None
    assert fired[0].title == "Battery at 19 %"
    assert "clears at 25 %" in fired[0].detail


def test_fuel_low_and_old_data_arriving_late(organization):
    rule = make_rule(organization, RuleKind.FUEL_LOW, threshold=15)
    vehicle = VehicleFactory(organization=organization)
    reading(vehicle, fuel=0.50, minutes=10)
    reading(vehicle, fuel=0.05, minutes=5)  # older than what we have: never fires
    assert not Alert.objects.filter(rule=rule).exists()
    reading(vehicle, fuel=0.10, minutes=11)
    assert open_alerts(rule).count() == 1


def test_a_failure_for_the_named_field_fires_and_clears(organization):
    rule = make_rule(organization, RuleKind.FIELD_FAILURE, field="battery_level")
    other = make_rule(organization, RuleKind.FIELD_FAILURE, name="Fuel", field="fuel_level")
    vehicle = VehicleFactory(organization=organization)
    reading(vehicle, failure_field="battery_level", minutes=1)
    (alert,) = open_alerts(rule)
    assert alert.title == "Failure reported"
    assert alert.detail == "Battery level: The car did not answer in time (No answer)"
    assert not Alert.objects.filter(rule=other).exists()
    reading(vehicle, failure_field="battery_level", minutes=2)
    assert Alert.objects.filter(rule=rule).count() == 1
    reading(vehicle, battery=0.8, minutes=3)
    assert not open_alerts(rule).exists()


def test_a_refused_defleet_fires(organization):
    rule = make_rule(organization, RuleKind.DEFLEET_REFUSED)
    clearance = ClearanceFactory(vehicle__organization=organization, status="pending")
    fleet_events.publish(
        [fleet_events.DefleetRefused(clearance.vehicle_id, "Too early.", timezone.now())]
    )
    (alert,) = open_alerts(rule)
    assert (alert.title, alert.detail) == ("Defleet refused", "Too early.")
    move(clearance, "approved", source="poll")  # any move clears it
    assert not open_alerts(rule).exists()


def test_pending_too_long_fires_once_per_vehicle_and_clears(organization):
    rule = make_rule(organization, RuleKind.PENDING_TOO_LONG, threshold=10)
    now = timezone.now()
    old = ClearanceFactory(
        vehicle__organization=organization,
        status="pending",
        status_changed_at=now - timedelta(days=12),
    )
    ClearanceFactory(
        vehicle__organization=organization,
        status="pending",
        status_changed_at=now - timedelta(days=3),
    )
    summary = evaluation.evaluate_time_rules(now)
    assert (summary.fired, summary.cleared) == (1, 0)
    (alert,) = open_alerts(rule)
    assert alert.vehicle_id == old.vehicle_id and alert.title == "Pending for 12 days"
    assert evaluation.evaluate_time_rules(now + timedelta(minutes=5)).fired == 0
    move(old, "approved", source="poll")
    assert not open_alerts(rule).exists()


def test_silent_fires_for_approved_vehicles_only_and_clears_when_they_report(organization):
    rule = make_rule(organization, RuleKind.SILENT, threshold=6)
    now = timezone.now()
    quiet = ClearanceFactory(
        vehicle__organization=organization,
        vehicle__last_seen_at=now - timedelta(hours=7),
        status="approved",
    )
    never = ClearanceFactory(
        vehicle__organization=organization,
        status="approved",
        status_changed_at=now - timedelta(hours=8),
    )
    ClearanceFactory(  # pending: not watched
        vehicle__organization=organization,
        vehicle__last_seen_at=now - timedelta(days=2),
        status="pending",
    )
    ClearanceFactory(
        vehicle__organization=organization,
        vehicle__last_seen_at=now - timedelta(hours=1),
        status="approved",
    )
    assert evaluation.evaluate_time_rules(now).fired == 2
    assert {a.vehicle_id for a in open_alerts(rule)} == {quiet.vehicle_id, never.vehicle_id}
    quiet.vehicle.last_seen_at = now
    quiet.vehicle.save()
    summary = evaluation.evaluate_time_rules(now + timedelta(minutes=5))
    assert (summary.fired, summary.cleared) == (0, 1)


def test_the_periodic_evaluation_costs_the_same_queries_for_any_fleet_size(organization):
    make_rule(organization, RuleKind.SILENT, threshold=6)
    make_rule(organization, RuleKind.PENDING_TOO_LONG, threshold=10)
    MembershipFactory(organization=organization)
    now = timezone.now()
    counts = []
    for size in (4, 40):
        for _ in range(size):
            ClearanceFactory(
                vehicle__organization=organization,
                status="pending",
                status_changed_at=now - timedelta(days=30),
            )
        with CaptureQueriesContext(connection) as queries:
            evaluation.evaluate_time_rules(now)
        counts.append(len(queries))
        now += timedelta(minutes=5)
    assert counts[0] == counts[1], counts


def test_turning_a_rule_off_closes_its_alerts_so_it_fires_afresh(organization):
    rule = make_rule(organization, RuleKind.CLEARANCE_REJECTED)
    move(ClearanceFactory(vehicle__organization=organization, status="pending"), "rejected")
    assert open_alerts(rule).count() == 1
    rule_services.set_enabled(rule, False)
    assert not open_alerts(rule).exists()


def test_a_clearance_event_is_recorded_even_without_any_rule(organization):
    clearance = ClearanceFactory(vehicle__organization=organization, status="pending")
    move(clearance, "approved")
    assert ClearanceEvent.objects.filter(clearance=clearance, to_status="approved").exists()
    assert not Alert.objects.exists()


def test_time_based_rules_for_a_tag(organization):
    berlin = make_rule(
        organization,
        RuleKind.PENDING_TOO_LONG,
        name="Berlin",
        threshold=3,
        tag_key="depot",
        tag_value="berlin",
    )
    vans = make_rule(
        organization, RuleKind.PENDING_TOO_LONG, name="Vans", threshold=3, tag_key="vans"
    )
    now = timezone.now()
    for tags in ({"depot": "berlin"}, {"depot": "munich"}, {"vans": ""}, {}):
        ClearanceFactory(
            vehicle__organization=organization,
            vehicle__tags=tags,
            status="pending",
            status_changed_at=now - timedelta(days=5),
        )
    evaluation.evaluate_time_rules(now)
    assert [a.vehicle.tags for a in open_alerts(berlin)] == [{"depot": "berlin"}]
    assert [a.vehicle.tags for a in open_alerts(vans)] == [{"vans": ""}]
    assert evaluation.evaluate_time_rules(now).cleared == 0


def test_a_threshold_near_full_clears_at_a_full_tank(organization):
    rule = make_rule(organization, RuleKind.FUEL_LOW, threshold=98)
    vehicle = VehicleFactory(organization=organization)
    reading(vehicle, fuel=0.97, minutes=1)
    (alert,) = open_alerts(rule)
    assert alert.detail == "Below the rule's 98 %; the alert clears at 100 %."
    reading(vehicle, fuel=1.0, minutes=2)
    assert not open_alerts(rule).exists()
