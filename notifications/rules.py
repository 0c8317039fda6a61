"""Changing alert rules: a rule that changes, is turned off or is deleted closes its open alerts,
so it fires afresh under its new definition (and never for a condition it no longer watches)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from notifications import alerts
from notifications.models import AlertRule

# Changing only these leaves the rule's open alerts as they are.
HARMLESS_FIELDS = {"name", "email_default"}


def save_rule(form, *, by) -> AlertRule:
    """Save an add/edit form's rule; a change to what it watches closes its open alerts."""
    with transaction.atomic():
        rule = form.save(commit=False)
        if rule.pk is None:
            rule.created_by = by
        elif set(form.changed_data) - HARMLESS_FIELDS or not rule.enabled:
            alerts.close(Q(rule=rule))
        rule.save()
    return rule


def set_enabled(rule: AlertRule, enabled: bool) -> None:
    with transaction.atomic():
        rule.enabled = enabled
        rule.save(update_fields=["enabled", "updated_at"])
        if not enabled:
            alerts.close(Q(rule=rule))


def delete_rule(rule: AlertRule) -> None:
    """Delete the rule; its alerts and notifications stay, closed, under the rule's name."""
    with transaction.atomic():
        alerts.close(Q(rule=rule))
        rule.delete()
