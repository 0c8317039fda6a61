"""Alert rules evaluated where the news happens, and the periodic evaluation of time-based rules.

The ``on_*`` listeners are subscribed to the fleet events (vehicles/events.py) at start-up and run
inside the transaction of the change; each batch costs a constant number of queries: the
vehicles, the organizations' enabled rules and endpoints, one UPDATE closing what cleared, one
INSERT for what fired. ``evaluate_time_rules`` (beat) runs every enabled time-based rule over the
whole fleet with one query per rule for what fires and one for what clears.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Coalesce
from django.utils import timezone

from notifications import alerts, outgoing
from notifications import conditions as c
from notifications.alerts import Firing
from notifications.models import Alert, AlertRule, RuleKind, WebhookEndpoint
from organizations.models import Organization
from vehicles.events import ClearanceChanged, DefleetRefused, ImportFinished, TelemetryRecorded
from vehicles.models import Vehicle

logger = logging.getLogger(__name__)

VEHICLE_FIELDS = (
    "id",
    "organization_id",
    "public_id",
    "vin",
    "brand",
    "nickname",
    "license_plate",
    "tags",
    "last_seen_at",
    "organization__public_id",
    "organization__slug",
    "organization__name",
)
# Kinds whose open alerts a clearance move may close.
STATUS_TIED = [kind for kind, cond in c.CONDITIONS.items() if cond.holds_in is not None]


def vehicles_by_id(ids: Iterable[int], rule_kinds: Iterable[str] = ()) -> dict[int, Vehicle]:
    """The vehicles with their organization, each marked with whether its organization has
    enabled rules of ``rule_kinds`` (``has_rules``) and enabled endpoints (``has_endpoints``):
    one query, after one on the (small) rule and endpoint tables that ends it when no
    organization has any. Vehicles of organizations with neither are left out: nothing is done
    for them, and building them all cost a 100,000-row import a tenth of its time."""
    kinds = list(rule_kinds)
    organization_ids = set(
        Organization.objects.filter(
            Exists(
                AlertRule.objects.filter(
                    organization_id=OuterRef("pk"), enabled=True, kind__in=kinds
                )
            )
            | Exists(WebhookEndpoint.objects.filter(organization_id=OuterRef("pk"), enabled=True))
        ).values_list("pk", flat=True)
    )
    if not organization_ids:
        return {}
    organization = OuterRef("organization_id")
    rows = (
        Vehicle.objects.select_related("organization")
        .only(*VEHICLE_FIELDS)
        .annotate(
            has_rules=Exists(
                AlertRule.objects.filter(organization_id=organization, enabled=True, kind__in=kinds)
            ),
            has_endpoints=Exists(
                WebhookEndpoint.objects.filter(organization_id=organization, enabled=True)
            ),
        )
    )
    wanted = rows.filter(
        Q(has_rules=True) | Q(has_endpoints=True),
        pk__in=set(ids),
        organization_id__in=organization_ids,
    )
    return {v.pk: v for v in wanted}


def with_rules(vehicles: dict[int, Vehicle]) -> set[int]:
    return {v.organization_id for v in vehicles.values() if getattr(v, "has_rules", False)}


def with_endpoints(vehicles: dict[int, Vehicle]) -> set[int]:
    return {v.organization_id for v in vehicles.values() if getattr(v, "has_endpoints", False)}


def enabled_rules(organization_ids: Iterable[int], kinds: Iterable[str]) -> list[AlertRule]:
    return list(
        AlertRule.objects.filter(
            organization_id__in=set(organization_ids), enabled=True, kind__in=list(kinds)
        )
    )


def _any_of(groups: Mapping[tuple[str, Any], set[int]]) -> Q | None:
    """Q matching (rule or kind, vehicle ids) groups: ``{("kind", value): {vehicle ids}}``."""
    condition = None
    for (name, value), vehicle_ids in groups.items():
        if vehicle_ids:
            part = Q(**{name: value, "vehicle_id__in": sorted(vehicle_ids)})
            condition = part if condition is None else condition | part
    return condition


# --- clearance moves ------------------------------------------------------------------------------


def clearance_data(event: ClearanceChanged, vehicle: Vehicle) -> dict:
    return {
        "vehicle": outgoing.vehicle_json(vehicle),
        "clearance": {
            "from": event.from_status or None,
            "to": event.to_status,
            "changed_at": outgoing.iso(event.at),
            "source": event.source,
            "reason": event.reason,
        },
    }


def _enters(kind: str, event: ClearanceChanged) -> bool:
    if kind == RuleKind.CLEARANCE_REVOKED:
        # revoked after "revoking" is the end of our own defleet, not the carmaker's doing
        return event.to_status == "revoked" and event.from_status != "revoking"
    holds_in = c.condition(kind).holds_in or frozenset()
    return event.to_status in holds_in


def on_clearance_changed(events: Sequence[ClearanceChanged]) -> None:
    vehicles = vehicles_by_id((e.vehicle_id for e in events), STATUS_TIED)
    receiving = with_endpoints(vehicles)
    endpoints = outgoing.subscribed_endpoints(receiving) if receiving else {}
    items = []
    for event in events:
        vehicle = vehicles.get(event.vehicle_id)
        if vehicle is None or vehicle.organization_id not in endpoints:
            continue
        data = clearance_data(event, vehicle)
        items.append(outgoing.Item(vehicle.organization, outgoing.CLEARANCE_CHANGED, data))
        if event.to_status in ("revoking", "canceling"):
            items.append(outgoing.Item(vehicle.organization, outgoing.VEHICLE_DEFLEETED, data))
    outgoing.emit(items, endpoints=endpoints)

    if not with_rules(vehicles):
        return
    rules = enabled_rules(with_rules(vehicles), STATUS_TIED)
    now = timezone.now()
    final = {event.vehicle_id: event.to_status for event in events}
    kinds_in_use = {rule.kind for rule in rules}
    closing = {
        ("kind", kind): {vid for vid, status in final.items() if c.cleared_by_status(kind, status)}
        for kind in kinds_in_use
    }
    if (condition := _any_of(closing)) is not None:
        alerts.close(condition, now=now)
    entered: dict[tuple[int, int], ClearanceChanged] = {}
    for event in events:
        vehicle = vehicles.get(event.vehicle_id)
        if vehicle is None:
            continue
        for rule in rules:
            if (
                rule.organization_id == vehicle.organization_id
                and c.condition(rule.kind).trigger == c.ON_CLEARANCE
                and _enters(rule.kind, event)
                and event.to_status == final[event.vehicle_id]
                and rule.applies_to(vehicle.tags)
            ):
                entered[(rule.pk, vehicle.pk)] = event
    firings = []
    for rule in rules:
        for (rule_id, vehicle_id), event in entered.items():
            if rule_id == rule.pk:
                title, detail = c.clearance_words(rule.kind, event.reason)
                firings.append(Firing(rule, vehicles[vehicle_id], title, detail))
    alerts.fire(firings, now=now)


# --- refused defleets -----------------------------------------------------------------------------


def on_defleet_refused(events: Sequence[DefleetRefused]) -> None:
    vehicles = vehicles_by_id((e.vehicle_id for e in events), [RuleKind.DEFLEET_REFUSED])
    if not with_rules(vehicles):
        return
    rules = enabled_rules(with_rules(vehicles), [RuleKind.DEFLEET_REFUSED])
    firings = [
        Firing(rule, vehicle, "Defleet refused", event.reason)
        for event in events
        if (vehicle := vehicles.get(event.vehicle_id)) is not None
        for rule in rules
        if rule.organization_id == vehicle.organization_id and rule.applies_to(vehicle.tags)
    ]
    alerts.fire(firings)


# --- telemetry ------------------------------------------------------------------------------------

LEVELS: dict[str, tuple[str, str]] = {
    RuleKind.BATTERY_LOW: ("battery_level", "Battery"),
    RuleKind.FUEL_LOW: ("fuel_level", "Fuel"),
}


def _telemetry_verdict(rule: AlertRule, event: TelemetryRecorded):
    """("fire", title, detail), ("clear", ...) or None when this snapshot says nothing new."""
    if rule.kind in LEVELS:
        name, what = LEVELS[rule.kind]
        level = getattr(event, name)
        if level is None or rule.threshold is None:
            return None
        if c.level_is_low(level, rule.threshold):
            return ("fire", *c.level_words(what, level, rule.threshold))
        if c.level_has_recovered(level, rule.threshold):
            return ("clear", "", "")
        return None
    failure = event.failures.get(rule.field)
    if failure:
        return ("fire", "Failure reported", failure)
    if rule.field in event.reported:
        return ("clear", "", "")
    return None


def on_telemetry_recorded(events: Sequence[TelemetryRecorded]) -> None:
    vehicles = vehicles_by_id((e.vehicle_id for e in events), c.kinds(c.ON_TELEMETRY))
    if not with_rules(vehicles):
        return
    rules = enabled_rules(with_rules(vehicles), c.kinds(c.ON_TELEMETRY))
    now = timezone.now()
    firings: dict[tuple[int, int], Firing] = {}
    closing: dict[tuple[str, int], set[int]] = defaultdict(set)
    for event in events:
        vehicle = vehicles.get(event.vehicle_id)
        if vehicle is None:
            continue
        for rule in rules:
            if rule.organization_id != vehicle.organization_id or not rule.applies_to(vehicle.tags):
                continue
            verdict = _telemetry_verdict(rule, event)
            if verdict is None:
                continue
            action, title, detail = verdict
            if action == "fire":
                firings[(rule.pk, vehicle.pk)] = Firing(rule, vehicle, title, detail)
            else:
                firings.pop((rule.pk, vehicle.pk), None)
                closing[("rule_id", rule.pk)].add(vehicle.pk)
    if (condition := _any_of(closing)) is not None:
        alerts.close(condition, now=now)
    alerts.fire(firings.values(), now=now)


# --- imports --------------------------------------------------------------------------------------


def on_import_finished(events: Sequence[ImportFinished]) -> None:
    organizations = Organization.objects.in_bulk({e.organization_id for e in events})
    endpoints = outgoing.subscribed_endpoints(organizations, outgoing.IMPORT_FINISHED)
    outgoing.emit(
        [
            outgoing.Item(
                organizations[event.organization_id],
                outgoing.IMPORT_FINISHED,
                {
                    "import": {
                        "id": event.import_id,
                        "file_name": event.file_name,
                        "status": event.status,
                        "finished_at": outgoing.iso(event.finished_at),
                        "message": event.message,
                        **event.counts,
                        "url": outgoing.absolute(f"/imports/{event.import_id}/"),
                    }
                },
            )
            for event in events
            if event.organization_id in endpoints
        ],
        endpoints=endpoints,
    )


# --- the periodic evaluation ----------------------------------------------------------------------


@dataclass
class Evaluation:
    rules: int = 0
    fired: int = 0
    cleared: int = 0
    per_rule: dict[str, tuple[int, int]] = field(default_factory=dict)


def in_scope(rule: AlertRule, queryset: QuerySet) -> QuerySet:
    if not rule.tag_key:
        return queryset
    queryset = queryset.filter(tags__has_key=rule.tag_key)
    if rule.tag_value:
        queryset = queryset.alias(_tag=KeyTransform(rule.tag_key, "tags")).filter(
            _tag=rule.tag_value
        )
    return queryset


def meeting_condition(rule: AlertRule, now: datetime) -> QuerySet:
    """The rule's vehicles that meet its time-based condition now (a queryset, not evaluated)."""
    vehicles = in_scope(rule, Vehicle.objects.filter(organization_id=rule.organization_id))
    if rule.kind == RuleKind.PENDING_TOO_LONG:
        return (
            vehicles.filter(clearance__status="pending")
            .alias(since=Coalesce("clearance__status_changed_at", "clearance__requested_at"))
            .filter(since__lt=now - timedelta(days=rule.threshold or 0))
        )
    if rule.kind == RuleKind.SILENT:
        return (
            vehicles.filter(clearance__status="approved")
            .alias(since=Coalesce("last_seen_at", "clearance__status_changed_at"))
            .filter(since__lt=now - timedelta(hours=rule.threshold or 0))
        )
    raise ValueError(f"{rule.kind} is not a time-based rule")


def _words(rule: AlertRule, vehicle: Vehicle, now: datetime) -> tuple[str, str]:
    if rule.kind == RuleKind.PENDING_TOO_LONG:
        clearance = vehicle.clearance
        since = clearance.status_changed_at or clearance.requested_at or now
        return c.pending_words(since, now, rule.threshold or 0)
    return c.silent_words(vehicle.last_seen_at, now, rule.threshold or 0)


def evaluate_rule(rule: AlertRule, now: datetime) -> tuple[int, int]:
    """(fired, cleared) for one time-based rule over its whole fleet."""
    meeting = meeting_condition(rule, now)
    open_alert = Alert.objects.filter(rule=rule, vehicle=OuterRef("pk"), cleared_at__isnull=True)
    # Correlated (NOT) EXISTS, which the database runs as an anti-join: a NOT IN over the
    # fleet's ids would be re-scanned for every open alert on PostgreSQL.
    still_meeting = meeting.filter(pk=OuterRef("vehicle_id"))
    with transaction.atomic():
        cleared = alerts.close(Q(rule=rule) & Q(~Exists(still_meeting)), now=now)
        newly = list(
            meeting.filter(~Exists(open_alert))
            .select_related("organization", "clearance")
            .only(*VEHICLE_FIELDS, "clearance__status_changed_at", "clearance__requested_at")
        )
        fired = alerts.fire(
            [Firing(rule, vehicle, *_words(rule, vehicle, now)) for vehicle in newly], now=now
        )
    return len(fired), cleared


def evaluate_time_rules(now: datetime | None = None) -> Evaluation:
    now = now or timezone.now()
    summary = Evaluation()
    rules = AlertRule.objects.filter(enabled=True, kind__in=c.kinds(c.PERIODIC)).order_by("pk")
    for rule in rules:
        fired, cleared = evaluate_rule(rule, now)
        summary.rules += 1
        summary.fired += fired
        summary.cleared += cleared
        summary.per_rule[str(rule.public_id)] = (fired, cleared)
    if summary.fired or summary.cleared:
        logger.info(
            "Alert rules: %s evaluated, %s fired, %s cleared",
            summary.rules,
            summary.fired,
            summary.cleared,
        )
    return summary
