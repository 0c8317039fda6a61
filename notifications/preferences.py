"""A member's own choices: email per rule, time zone and digest hour; one-click unsubscribe.

Unsubscribe links carry a signed token (Django's signing with the secret key, a salt of its own)
naming the user and the rules of the email; opening one needs no login, and it can only ever
switch those rules' email off for that user.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from datetime import datetime, time, timedelta

from django.conf import settings
from django.core import signing as django_signing
from django.db.models import QuerySet
from django.urls import reverse

from notifications.models import AlertRule, EmailMode, EmailSubscription, NotificationSettings
from organizations.models import Membership

UNSUBSCRIBE_SALT = "fleetportal.notifications.unsubscribe"
DEFAULT_DIGEST_HOUR = 8


def settings_for(user) -> NotificationSettings:
    """The user's settings, unsaved defaults when they never changed them."""
    found = NotificationSettings.objects.filter(user=user).first()
    return found or NotificationSettings(
        user=user, time_zone=settings.TIME_ZONE, digest_hour=DEFAULT_DIGEST_HOUR
    )


def zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def last_digest_slot(time_zone: str, hour: int, now: datetime) -> datetime:
    """The latest ``hour``:00 in ``time_zone`` at or before ``now`` (an aware datetime)."""
    tz = zone(time_zone)
    local = now.astimezone(tz)
    slot = datetime.combine(local.date(), time(hour), tzinfo=tz)
    if slot > local:
        slot = datetime.combine(local.date() - timedelta(days=1), time(hour), tzinfo=tz)
    return slot


def rules_with_choices(user, organization) -> list[tuple[AlertRule, str, bool]]:
    """(rule, the member's effective email mode, whether they chose it) for every rule."""
    chosen = dict(
        EmailSubscription.objects.filter(user=user, rule__organization=organization).values_list(
            "rule_id", "mode"
        )
    )
    return [
        (rule, chosen.get(rule.pk, rule.email_default), rule.pk in chosen)
        for rule in AlertRule.objects.filter(organization=organization).order_by("name")
    ]


def choose(user, rule: AlertRule, mode: str) -> None:
    if mode not in EmailMode.values:
        raise ValueError(mode)
    EmailSubscription.objects.update_or_create(user=user, rule=rule, defaults={"mode": mode})


# --- unsubscribe ----------------------------------------------------------------------------------


def unsubscribe_token(user_id: int, rule_ids: Iterable[int]) -> str:
    return django_signing.dumps(
        {"u": user_id, "r": sorted(set(rule_ids))}, salt=UNSUBSCRIBE_SALT, compress=True
    )


def unsubscribe_url(user_id: int, rule_ids: Iterable[int]) -> str:
    token = unsubscribe_token(user_id, rule_ids)
    return f"{settings.SITE_URL}{reverse('notifications:unsubscribe', args=[token])}"


def read_unsubscribe_token(token: str) -> tuple[int, list[int]] | None:
    try:
        payload = django_signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except django_signing.BadSignature:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), int):
        return None
    rule_ids = [r for r in payload.get("r", []) if isinstance(r, int)]
    return payload["u"], rule_ids


def rules_of_token(user_id: int, rule_ids: list[int]) -> QuerySet:
    """The token's rules that still exist in organizations the user still belongs to."""
    organizations = Membership.objects.filter(user_id=user_id).values("organization_id")
    return AlertRule.objects.filter(pk__in=rule_ids, organization_id__in=organizations)


def unsubscribe(user_id: int, rule_ids: list[int]) -> list[AlertRule]:
    rules = list(rules_of_token(user_id, rule_ids).order_by("name"))
    for rule in rules:
        EmailSubscription.objects.update_or_create(
            user_id=user_id, rule=rule, defaults={"mode": EmailMode.OFF}
        )
    return rules
