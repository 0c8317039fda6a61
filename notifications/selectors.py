"""Reads for the notification centre: the bell's count and the filtered list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from notifications.models import AlertRule, Notification, RuleKind
from organizations.models import Organization

STATES = {"unread": "Unread", "all": "All"}


# The bell counts up to this many (shown as "99+"): its query reads at most this many index entries.
UNREAD_COUNT_CAP = 100


def unread_count(user, organization: Organization) -> int:
    """One COUNT over the partial index of unread notifications (the bell), capped."""
    unread = Notification.objects.filter(user=user, organization=organization, read_at__isnull=True)
    return unread[:UNREAD_COUNT_CAP].count()


@dataclass(frozen=True)
class NotificationFilter:
    state: str = "all"
    kind: str = ""
    rule: str = ""
    q: str = ""

    def as_params(self) -> dict[str, str]:
        params = {"state": self.state if self.state != "all" else "", "kind": self.kind}
        params |= {"rule": self.rule, "q": self.q}
        return {key: value for key, value in params.items() if value}

    @property
    def active(self) -> bool:
        return bool(self.as_params())


def parse_filter(params: Mapping[str, str]) -> NotificationFilter:
    state = params.get("state") or "all"
    kind = params.get("kind") or ""
    return NotificationFilter(
        state=state if state in STATES else "all",
        kind=kind if kind in RuleKind.values else "",
        rule=(params.get("rule") or "").strip()[:40],
        q=(params.get("q") or "").strip()[:100],
    )


def notifications_for(user, organization: Organization, flt: NotificationFilter) -> QuerySet:
    """The member's notifications in this organization, newest first, with alert and vehicle."""
    rows = Notification.objects.filter(user=user, organization=organization).select_related(
        "alert", "alert__vehicle", "alert__rule"
    )
    if flt.state == "unread":
        rows = rows.filter(read_at__isnull=True)
    if flt.kind:
        rows = rows.filter(alert__kind=flt.kind)
    if flt.rule:
        rows = rows.filter(alert__rule__public_id__iexact=flt.rule)
    if flt.q:
        rows = rows.filter(
            Q(alert__vehicle__vin__icontains=flt.q)
            | Q(alert__vehicle__nickname__icontains=flt.q)
            | Q(alert__vehicle__license_plate__icontains=flt.q)
            | Q(alert__title__icontains=flt.q)
        )
    return rows.order_by("-created_at", "-id")


def rules_of(organization: Organization) -> QuerySet:
    return AlertRule.objects.filter(organization=organization).order_by("name")
