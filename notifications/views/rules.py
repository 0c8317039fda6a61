"""Alert rules of the organization: every member sees them, owners and managers change them."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Q
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notifications import conditions, rules
from notifications.forms import FAILURE_FIELDS, AlertRuleForm
from notifications.models import AlertRule
from organizations.access import get_object_for_user, require_membership, require_role, scoped
from organizations.models import Role


@require_GET
def rule_list(request):
    membership = require_membership(request)
    rows = list(
        scoped(request, AlertRule)
        .annotate(open_alerts=Count("alerts", filter=Q(alerts__cleared_at__isnull=True)))
        .order_by("name")
    )
    labels = dict(FAILURE_FIELDS)
    for rule in rows:
        rule.summary = conditions.summary(rule.kind, rule.threshold, labels.get(rule.field, ""))
    return render(
        request,
        "notifications/rules.html",
        {
            "rules": rows,
            "can_edit": membership.can_manage,
            "conditions": conditions.CONDITIONS,
        },
    )


def _form_page(request, form, rule=None):
    return render(
        request,
        "notifications/rule_form.html",
        {"form": form, "rule": rule, "conditions": conditions.CONDITIONS},
    )


@require_http_methods(["GET", "POST"])
def rule_add(request):
    membership = require_role(request, Role.MANAGER)
    form = AlertRuleForm(request.POST or None, organization=membership.organization)
    if request.method == "POST" and form.is_valid():
        rule = rules.save_rule(form, by=request.user)
        messages.success(request, f"Rule “{rule.name}” saved.")
        return redirect("notifications:rules")
    return _form_page(request, form)


@require_http_methods(["GET", "POST"])
def rule_edit(request, public_id):
    membership = require_role(request, Role.MANAGER)
    rule = get_object_for_user(request, AlertRule, public_id=public_id)
    form = AlertRuleForm(request.POST or None, instance=rule, organization=membership.organization)
    if request.method == "POST" and form.is_valid():
        rules.save_rule(form, by=request.user)
        messages.success(request, f"Rule “{rule.name}” saved.")
        return redirect("notifications:rules")
    return _form_page(request, form, rule)


@require_POST
def rule_toggle(request, public_id):
    rule = get_object_for_user(request, AlertRule, role=Role.MANAGER, public_id=public_id)
    turn_on = request.POST.get("enabled") == "1"
    rules.set_enabled(rule, turn_on)
    messages.success(request, f"Rule “{rule.name}” turned {'on' if turn_on else 'off'}.")
    return redirect("notifications:rules")


@require_POST
def rule_delete(request, public_id):
    rule = get_object_for_user(request, AlertRule, role=Role.MANAGER, public_id=public_id)
    name = rule.name
    rules.delete_rule(rule)
    messages.success(request, f"Rule “{name}” deleted; its past alerts stay in the list.")
    return redirect("notifications:rules")
