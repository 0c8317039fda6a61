"""The owners' audit log page: filters (who, action, vehicle, dates) and the CSV of the filter."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.shortcuts import render
from django.utils import timezone

from audit.models import Action, AuditEntry
from imports.exports import csv_response
from organizations.access import require_role
from organizations.models import Role

PAGE_SIZE = 100


class AuditFilterForm(forms.Form):
    who = forms.CharField(required=False, max_length=200, label="Who")
    action = forms.ChoiceField(required=False, choices=[("", "Any action"), *Action.choices])
    vehicle = forms.CharField(required=False, max_length=40, label="Vehicle (VIN)")
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )


def filtered_entries(
    organization: Any, params: Any
) -> tuple[AuditFilterForm, QuerySet[AuditEntry]]:
    form = AuditFilterForm(params or None)
    entries = AuditEntry.objects.filter(organization=organization)
    if form.is_valid():
        data = form.cleaned_data
        if data["who"]:
            entries = entries.filter(actor__icontains=data["who"].strip())
        if data["action"]:
            entries = entries.filter(action=data["action"])
        if data["vehicle"]:
            vin = data["vehicle"].strip().upper()
            entries = entries.filter(Q(object_label__icontains=vin) & Q(object_type="vehicle"))
        if data["date_from"]:
            start = timezone.make_aware(datetime.combine(data["date_from"], time.min))
            entries = entries.filter(at__gte=start)
        if data["date_to"]:
            end = timezone.make_aware(datetime.combine(data["date_to"], time.min))
            entries = entries.filter(at__lt=end + timedelta(days=1))
    return form, entries.order_by("-at", "-id")


def audit_log(request):
    membership = require_role(request, Role.OWNER)
    form, entries = filtered_entries(membership.organization, request.GET)
    if request.GET.get("format") == "csv":
        stamp = timezone.now().strftime("%Y-%m-%d")
        return csv_response(_rows(entries), f"audit-log-{stamp}.csv")
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/log.html",
        {"form": form, "page": page, "query": query.urlencode()},
    )


def _rows(entries: QuerySet[AuditEntry]) -> Iterator[list[Any]]:
    yield ["when (UTC)", "who", "action", "object", "object id", "details", "IP address"]
    labels = dict(Action.choices)
    for entry in entries.iterator(chunk_size=2000):
        yield [
            entry.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            entry.actor,
            labels.get(entry.action, entry.action),
            f"{entry.object_type} {entry.object_label}".strip(),
            entry.object_id,
            "; ".join(f"{k}: {v}" for k, v in entry.details.items()) if entry.details else "",
            entry.ip or "",
        ]
