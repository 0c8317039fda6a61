"""Daily digests: at each member's chosen hour, in their time zone, one email per organization
listing the alerts of the rules they take as a digest, fired in the day up to that hour.

Run by beat every few minutes; whatever is due is written as ``OutgoingEmail`` rows in the same
transaction that moves the member's ``digest_covered_until`` forward, so a digest is neither
lost nor sent twice when beat or a worker stops. The reads are a constant number of queries
whatever the number of members; the writes are a few per digest written.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from notifications import preferences, tasks
from notifications.alerts import email_modes
from notifications.models import (
    Alert,
    AlertRule,
    EmailMode,
    NotificationSettings,
    OutgoingEmail,
)
from organizations.models import Membership

# Alerts older than this are never put in a digest (beat down for days: they are still on the
# notifications page).
LOOKBACK = timedelta(days=7)


def prepare_digests(now: datetime | None = None) -> int:
    """Write the digests that are due; returns how many emails were written."""
    now = now or timezone.now()
    recent = list(
        Alert.objects.filter(fired_at__gt=now - LOOKBACK, rule__isnull=False)
        .only("pk", "organization_id", "rule_id", "fired_at")
        .order_by("fired_at", "pk")
    )
    if not recent:
        return 0
    organization_ids = {alert.organization_id for alert in recent}
    rules = list(AlertRule.objects.filter(organization_id__in=organization_ids))
    members = list(
        Membership.objects.filter(organization_id__in=organization_ids, user__is_active=True)
        .exclude(user__email="")
        .values_list("organization_id", "user_id")
    )
    user_ids = {user_id for _, user_id in members}
    modes = email_modes(user_ids, rules)
    digest_rules = defaultdict(set)  # user id -> ids of the rules they take as a digest
    for (user_id, rule_id), mode in modes.items():
        if mode == EmailMode.DIGEST:
            digest_rules[user_id].add(rule_id)
    if not digest_rules:
        return 0
    saved = {s.user_id: s for s in NotificationSettings.objects.filter(user_id__in=digest_rules)}
    belongs = set(members)
    written: list[OutgoingEmail] = []
    with transaction.atomic():
        for user_id, rule_ids in digest_rules.items():
            choice = saved.get(user_id) or NotificationSettings(
                user_id=user_id,
                time_zone=settings.TIME_ZONE,
                digest_hour=preferences.DEFAULT_DIGEST_HOUR,
            )
            slot = preferences.last_digest_slot(choice.time_zone, choice.digest_hour, now)
            covered = choice.digest_covered_until
            if covered is not None and covered >= slot:
                continue
            # A digest covers the day up to its hour: what fires after goes in the next one.
            since = covered or slot - timedelta(days=1)
            mine = [a for a in recent if a.rule_id in rule_ids and since < a.fired_at <= slot]
            for organization_id in sorted({a.organization_id for a in mine}):
                if (organization_id, user_id) not in belongs:
                    continue
                email = _write(user_id, organization_id, mine, now)
                if email is not None:
                    written.append(email)
            choice.digest_covered_until = slot
            choice.save()
    tasks.wake_emails(written)
    return len(written)


def _write(
    user_id: int, organization_id: int, alerts: list[Alert], now: datetime
) -> OutgoingEmail | None:
    listed = [a.pk for a in alerts if a.organization_id == organization_id]
    if not listed:
        return None
    email = OutgoingEmail.objects.create(
        organization_id=organization_id,
        user_id=user_id,
        kind=OutgoingEmail.Kind.DIGEST,
        next_attempt_at=now,
        created_at=now,
    )
    email.alerts.add(*listed)
    return email
