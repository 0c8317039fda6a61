"""Opening and closing alerts, and telling the members: notification centre, email, webhooks.

``fire`` inserts the alerts whose rule and vehicle have no open alert yet (notifications/bulk.py):
the partial unique index on open alerts decides which are new, so an alert fires once even when
two workers evaluate the same news at the same time. Only the new ones are fanned out, a few
statements per 2,000 alerts: a notification per member, an email per member and rule for those
who want it immediately, an ``alert.fired`` event per alert for the organization's endpoints.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from notifications import bulk, outgoing, tasks
from notifications.models import Alert, AlertRule, EmailMode, EmailSubscription, OutgoingEmail
from organizations.models import Membership
from vehicles.models import Vehicle


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
    return bulk.insert_open_alerts(
        [
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
    )


def fan_out(alerts: list[Alert], now: datetime) -> None:
    """Notifications for every active member, immediate emails, ``alert.fired`` events."""
    organization_ids = {alert.organization_id for alert in alerts}
    bulk.notify_members([alert.pk for alert in alerts])
    _immediate_emails(alerts, organization_ids, now)
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


def _immediate_emails(alerts: list[Alert], organization_ids: set[int], now: datetime) -> None:
    """One email per member and rule (listing every alert of this batch), for members who want
    this rule's alerts at once and have an address."""
    members_of: dict[int, list[int]] = defaultdict(list)
    addressed = (
        Membership.objects.filter(organization_id__in=organization_ids, user__is_active=True)
        .exclude(user__email="")
        .values_list("organization_id", "user_id")
        .order_by("pk")
    )
    for organization_id, user_id in addressed:
        members_of[organization_id].append(user_id)
    rules = {alert.rule.pk: alert.rule for alert in alerts if alert.rule is not None}
    user_ids = {user_id for members in members_of.values() for user_id in members}
    modes = email_modes(user_ids, rules.values())
    emails = [
        OutgoingEmail(
            organization_id=rule.organization_id,
            user_id=user_id,
            kind=OutgoingEmail.Kind.ALERTS,
            rule=rule,
            next_attempt_at=now,
            created_at=now,
        )
        for rule in rules.values()
        for user_id in members_of[rule.organization_id]
        if modes[(user_id, rule.pk)] == EmailMode.IMMEDIATE
    ]
    if not emails:
        return
    OutgoingEmail.objects.bulk_create(emails, batch_size=1000)
    bulk.link_email_alerts([email.pk for email in emails], [alert.pk for alert in alerts])
    tasks.wake_emails(emails)
