"""Opening and closing alerts, and telling the members: notification centre, email, webhooks.

``fire`` inserts the alerts whose rule and vehicle have no open alert yet, in one statement per
500 alerts (``INSERT ... ON CONFLICT DO NOTHING RETURNING``): the partial unique index on open
alerts decides which are new, so an alert fires once even when two workers evaluate the same
news at the same time. Only the new ones are fanned out, in a constant number of queries
whatever their number: a notification per member, an email per member and rule for those who
want it immediately, an ``alert.fired`` event per alert for the organization's endpoints.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from notifications import outgoing, tasks
from notifications.models import (
    Alert,
    AlertRule,
    EmailMode,
    EmailSubscription,
    Notification,
    OutgoingEmail,
)
from organizations.models import Membership
from vehicles.models import Vehicle

INSERT_BATCH = 500
ALERT_COLUMNS = (
    "public_id",
    "organization",
    "rule",
    "vehicle",
    "kind",
    "rule_name",
    "title",
    "detail",
    "fired_at",
)


@dataclass(frozen=True)
class Firing:
    rule: AlertRule
    vehicle: Vehicle
    title: str
    detail: str = ""


def fire(firings: Iterable[Firing], *, now: datetime | None = None) -> list[Alert]:
    """Open an alert for each firing whose rule and vehicle have none open; tell the members."""
    now = now or timezone.now()
    opened = open_alerts(list(firings), now)
    if opened:
        fan_out(opened, now)
    return opened


def close(condition: Q, *, now: datetime | None = None) -> int:
    """Close the open alerts matching ``condition``: their rule may fire again for the vehicle."""
    return Alert.objects.filter(condition, cleared_at__isnull=True).update(
        cleared_at=now or timezone.now()
    )


def open_alerts(firings: list[Firing], now: datetime) -> list[Alert]:
    alerts = [
        Alert(
            public_id=uuid.uuid4(),
            organization_id=f.vehicle.organization_id,
            rule=f.rule,
            vehicle=f.vehicle,
            kind=f.rule.kind,
            rule_name=f.rule.name,
            title=f.title[:200],
            detail=f.detail,
            fired_at=now,
        )
        for f in firings
    ]
    opened: list[Alert] = []
    for start in range(0, len(alerts), INSERT_BATCH):
        opened += _insert_new(alerts[start : start + INSERT_BATCH])
    return opened


def _insert_new(alerts: list[Alert]) -> list[Alert]:
    """INSERT the batch; the rows that hit an open alert of the same rule and vehicle are skipped.

    Written out because Django's ``bulk_create(ignore_conflicts=True)`` cannot say which rows
    were inserted. PostgreSQL and SQLite (3.35+) share this syntax.
    """
    if not alerts:
        return []
    meta = Alert._meta
    fields = [meta.get_field(name) for name in ALERT_COLUMNS]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [
        f.get_db_prep_save(getattr(alert, f.attname), connection)
        for alert in alerts
        for f in fields
    ]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {', '.join([row] * len(alerts))} "  # noqa: S608
        f"ON CONFLICT ({quote('rule_id')}, {quote('vehicle_id')}) "
        f"WHERE {quote('cleared_at')} IS NULL DO NOTHING "
        f"RETURNING {quote('id')}, {quote('public_id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        inserted = {uuid.UUID(str(public_id)): pk for pk, public_id in cursor.fetchall()}
    opened = []
    for alert in alerts:
        pk = inserted.get(alert.public_id)
        if pk is not None:
            alert.pk = pk
            alert._state.adding = False
            opened.append(alert)
    return opened


def fan_out(alerts: list[Alert], now: datetime) -> None:
    """Notifications for every active member, immediate emails, ``alert.fired`` events."""
    organization_ids = {alert.organization_id for alert in alerts}
    members = list(
        Membership.objects.filter(organization_id__in=organization_ids, user__is_active=True)
        .values_list("organization_id", "user_id", "user__email")
        .order_by("pk")
    )
    members_of: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for organization_id, user_id, email in members:
        members_of[organization_id].append((user_id, email))
    Notification.objects.bulk_create(
        [
            Notification(
                user_id=user_id,
                organization_id=alert.organization_id,
                alert=alert,
                created_at=alert.fired_at,
            )
            for alert in alerts
            for user_id, _email in members_of[alert.organization_id]
        ],
        batch_size=2000,
    )
    _immediate_emails(alerts, members_of, now)
    endpoints = outgoing.subscribed_endpoints(organization_ids, outgoing.ALERT_FIRED)
    if endpoints:
        outgoing.emit(
            [
                outgoing.Item(alert.vehicle.organization, outgoing.ALERT_FIRED, alert_data(alert))
                for alert in alerts
                if alert.organization_id in endpoints
            ],
            endpoints=endpoints,
        )


def alert_data(alert: Alert) -> dict:
    return {
        "alert": {
            "id": str(alert.public_id),
            "rule": {
                "id": str(alert.rule.public_id) if alert.rule else None,
                "name": alert.rule_name,
                "kind": alert.kind,
            },
            "title": alert.title,
            "detail": alert.detail,
            "fired_at": outgoing.iso(alert.fired_at),
        },
        "vehicle": outgoing.vehicle_json(alert.vehicle),
    }


def email_modes(user_ids: Iterable[int], rules: Iterable[AlertRule]) -> dict[tuple[int, int], str]:
    """{(user id, rule id): the member's email choice} for every pair, in one query."""
    rules = list(rules)
    user_ids = list(user_ids)
    chosen = dict(
        (((user_id, rule_id), mode))
        for user_id, rule_id, mode in EmailSubscription.objects.filter(
            rule__in=rules, user_id__in=user_ids
        ).values_list("user_id", "rule_id", "mode")
    )
    return {
        (user_id, rule.pk): chosen.get((user_id, rule.pk), rule.email_default)
        for user_id in user_ids
        for rule in rules
    }


def _immediate_emails(alerts, members_of, now: datetime) -> None:
    """One email per member and rule (listing every alert of this batch), for members who want
    this rule's alerts at once and have an address."""
    by_rule: dict[int, list[Alert]] = defaultdict(list)
    rules: dict[int, AlertRule] = {}
    for alert in alerts:
        by_rule[alert.rule.pk].append(alert)
        rules[alert.rule.pk] = alert.rule
    user_ids = {user_id for members in members_of.values() for user_id, _ in members}
    modes = email_modes(user_ids, rules.values())
    emails: list[tuple[OutgoingEmail, list[Alert]]] = []
    for rule_id, rule_alerts in by_rule.items():
        rule = rules[rule_id]
        for user_id, address in members_of[rule.organization_id]:
            if address and modes[(user_id, rule_id)] == EmailMode.IMMEDIATE:
                email = OutgoingEmail(
                    organization_id=rule.organization_id,
                    user_id=user_id,
                    kind=OutgoingEmail.Kind.ALERTS,
                    rule=rule,
                    next_attempt_at=now,
                    created_at=now,
                )
                emails.append((email, rule_alerts))
    if not emails:
        return
    OutgoingEmail.objects.bulk_create([email for email, _ in emails], batch_size=1000)
    Through = OutgoingEmail.alerts.through
    Through.objects.bulk_create(
        [
            Through(outgoingemail_id=email.pk, alert_id=alert.pk)
            for email, rule_alerts in emails
            for alert in rule_alerts
        ],
        batch_size=2000,
    )
    tasks.wake_after_commit(tasks.send_emails)
