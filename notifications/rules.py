"""Changing alert rules: a rule that changes, is turned off or is deleted closes its open alerts,
so it fires afresh under its new definition (and never for a condition it no longer watches)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from audit import log as audit
from audit.models import Action
from notifications import alerts
from notifications.models import AlertRule

# Changing only these leaves the rule's open alerts as they are.
HARMLESS_FIELDS = {"name", "email_default"}


def save_rule(form, *, by) -> AlertRule:
    """Save an add/edit form's rule; a change to what it watches closes its open alerts."""
    with transaction.atomic():
        rule = form.save(commit=False)
        is_new = rule.pk is None
        if is_new:
            rule.created_by = by
        elif set(form.changed_data) - HARMLESS_FIELDS or not rule.enabled:
            alerts.close(Q(rule=rule))
        rule.save()
        _audit(rule, "created" if is_new else "changed", [] if is_new else form.changed_data)
    return rule


def _audit(rule: AlertRule, change: str, fields: list[str] | None = None) -> None:
    details = {"change": change}
    if fields:
        details["fields"] = ", ".join(fields)
    audit.record(
        Action.ALERT_RULE_CHANGED,
        organization_id=rule.organization_id,
        target=audit.Target("alert_rule", rule.pk, rule.name, details),
    )


def set_enabled(rule: AlertRule, enabled: bool) -> None:
    with transaction.atomic():
        rule.enabled = enabled
        rule.save(update_fields=["enabled", "updated_at"])
        if not enabled:
            alerts.close(Q(rule=rule))
        _audit(rule, "turned on" if enabled else "turned off")


def delete_rule(rule: AlertRule) -> None:
    """Delete the rule; its alerts and notifications stay, closed, under the rule's name."""
    with transaction.atomic():
        alerts.close(Q(rule=rule))
        _audit(rule, "deleted")
        rule.delete()
