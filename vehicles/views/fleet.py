"""The fleet overview: live counters and rows, and bulk actions on selected rows or on
everything matching the filter (confirmed first, counted without loading the vehicles)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling, push_url

from clearance.models import Credential
from clearance.selectors import (
    BULK_SAMPLE_SIZE,
    FleetFilter,
    bulk_plan,
    credentials_for,
    filter_fleet,
    fleet_status_counts,
    parse_fleet_filter,
)
from clearance.services import fleet_actions
from clearance.wording import (
    CANCEL_REFUSAL_NOTE,
    NOT_REQUESTED,
    STATUS_LABELS,
    STATUS_ORDER,
    credential_label,
)
from organizations.access import current_organization, require_membership, require_role
from organizations.http import OrganizationRequest
from organizations.models import Role
from telemetry import fleet_columns
from telemetry.selectors import places_of
from vehicles.brands import BRAND_CHOICES
from vehicles.views import common

# --- fleet overview --------------------------------------------------------------------------------

ALWAYS_COUNTED = ("pending", "approved", "rejected")
COLUMNS = (
    ("vin", "VIN", ""),
    ("brand", "Brand", "hide-sm"),  # on phones it is shown under the VIN
    ("plate", "Plate", "hide-sm"),
    ("status", "Status", ""),
    (None, "HM application", "hide-sm"),
    ("changed", "Status since", "hide-sm"),
    ("seen", "Last seen", "hide-sm"),  # newest telemetry (Vehicle.last_seen_at, issue 7)
)


def _counter_items(counts: dict[str, int]) -> list[tuple[str, str, int]]:
    """Counters to show: the usual three always, the others when they have vehicles."""
    items = [
        (status, STATUS_LABELS[status], counts[status])
        for status in (*STATUS_ORDER, NOT_REQUESTED)
        if counts[status] or status in ALWAYS_COUNTED
    ]
    if counts["other"]:
        items.append(("other", "Other", counts["other"]))
    return items


def _columns(flt) -> list[dict]:
    columns = []
    for key, label, css in COLUMNS:
        current = key is not None and flt.sort == key
        columns.append(
            {
                "key": key,
                "label": label,
                "css": css,
                "next": None
                if key is None
                else (key if (current and flt.descending) or not current else f"-{key}"),
                "aria_sort": ("descending" if flt.descending else "ascending") if current else "",
            }
        )
    return columns


def _telemetry_context(
    request: OrganizationRequest, rows: list, flt, *, with_places: bool = True
) -> dict:
    """The telemetry columns the member shows (remembered), each row's cells from its
    LatestTelemetry (selected with the rows) and the places: two queries, whatever the page."""
    organization = current_organization(request)
    hidden = fleet_columns.hidden_columns(request.user, organization)
    # For the rows' "at Depot North" and the place filter.
    places = places_of(organization) if with_places else []
    for row in rows:
        row.tele = fleet_columns.cells(row.vehicle, places) if row.status == "approved" else None
    shown = []
    for key, label, sort in fleet_columns.COLUMNS:
        if key in hidden:
            continue
        current = flt.sort == sort
        shown.append(
            {
                "key": key,
                "label": label,
                "sort": sort,
                "next": sort if (current and flt.descending) or not current else f"-{sort}",
                "aria_sort": ("descending" if flt.descending else "ascending") if current else "",
            }
        )
    return {
        "tele_columns": shown,
        "tele_choices": [
            (key, label, key not in hidden) for key, label, _ in fleet_columns.COLUMNS
        ],
        "places": places,
    }


def _counters_context(counts: dict[str, int], flt, *, watching: bool = False) -> dict:
    return {
        "counts": counts,
        "counters_poll": bool(counts["in_flight"]) or watching,
        "counter_items": _counter_items(counts),
        "flt": flt,
        "counters_poll_seconds": common.COUNTERS_POLL_SECONDS,
    }


@require_GET
def fleet(request: OrganizationRequest) -> HttpResponse:
    if request.membership is None:
        return render(request, common.FLEET_TEMPLATE, {"no_membership": True})
    organization = request.membership.organization
    flt = parse_fleet_filter(request.GET)
    # The newest telemetry comes in the same query (a one-to-one join), never per row.
    vehicles = filter_fleet(organization, flt).select_related("latest_telemetry")
    page = Paginator(vehicles, common.PAGE_SIZE).get_page(request.GET.get("page"))
    watching = common.watching(request)
    rows = [common.decorate(vehicle, watching=watching) for vehicle in page.object_list]
    filter_query = urlencode(flt.as_params())
    export_url = common.url_or_none("imports:export")
    context = {
        **_counters_context(fleet_status_counts(organization), flt, watching=watching),
        "page_obj": page,
        "rows": rows,
        "columns": _columns(flt),
        "statuses": [(status, STATUS_LABELS[status]) for status in (*STATUS_ORDER, NOT_REQUESTED)],
        "brands": BRAND_CHOICES,
        "credentials": list(
            credentials_for(organization).values("public_id", "name", "environment")
        ),
        "can_manage": common.can_manage(request),
        "filter_query": filter_query,
        "filter_params": flt.as_params(),
        "import_url": common.url_or_none("imports:upload"),
        "export_url": f"{export_url}?{filter_query}" if export_url and filter_query else export_url,
        "row_poll_seconds": common.ROW_POLL_SECONDS,
        "counters_poll_seconds": common.COUNTERS_POLL_SECONDS,
        **_telemetry_context(request, rows, flt),
    }
    if request.htmx and request.htmx.target == "fleet-table":
        context["counters_oob"] = True
        response = render(request, f"{common.FLEET_TEMPLATE}#fleet-table-response", context)
        # A clean, shareable URL in the address bar (no empty parameters).
        params: dict[str, str | int] = {**flt.as_params()}
        if page.number > 1:
            params["page"] = page.number
        return push_url(response, request.path + (f"?{urlencode(params)}" if params else ""))
    return render(request, common.FLEET_TEMPLATE, context)


@require_GET
def fleet_counters(request: OrganizationRequest) -> HttpResponse:
    """The counters alone (polled); polling stops once nothing is in flight."""
    membership = require_membership(request)
    counts = fleet_status_counts(membership.organization)
    context = _counters_context(
        counts, parse_fleet_filter(request.GET), watching=common.watching(request)
    )
    html = render_to_string(f"{common.FLEET_TEMPLATE}#fleet-counters", context, request=request)
    if not context["counters_poll"]:
        return HttpResponseStopPolling(html)
    return HttpResponse(html)


@require_GET
def vehicle_row(request: OrganizationRequest, public_id) -> HttpResponse:
    """One table row (polled while its clearance is not terminal; 286 stops polling)."""
    vehicle = common.vehicle_for(request, public_id)
    context = {
        "v": vehicle,
        "can_manage": common.can_manage(request),
        "selected": str(vehicle.public_id) in request.GET.getlist("vehicle"),
        "row_poll_seconds": common.ROW_POLL_SECONDS,
        **_telemetry_context(
            request,
            [vehicle],
            parse_fleet_filter(request.GET),
            with_places=vehicle.status == "approved",
        ),
    }
    html = render_to_string(f"{common.FLEET_TEMPLATE}#vehicle-row", context, request=request)
    if not vehicle.polls:
        return HttpResponseStopPolling(html)
    return HttpResponse(html)


# --- bulk actions ----------------------------------------------------------------------------------

BULK_ACTIONS = {"request": "Request clearance", "defleet": "Defleet"}


@require_POST
def fleet_bulk(request: OrganizationRequest) -> HttpResponse:
    """Request clearance / defleet for selected rows or everything matching the filter.

    The first POST shows a confirmation page saying what will happen; the confirmed POST acts
    and returns to the overview with a summary.
    """
    membership = require_role(request, Role.MANAGER)
    organization = membership.organization
    action = request.POST.get("action", "")
    flt = parse_fleet_filter(request.POST)
    back = reverse("vehicles:fleet") + (f"?{urlencode(flt.as_params())}" if flt.as_params() else "")
    if action not in BULK_ACTIONS:
        messages.error(request, "Choose an action first.")
        return redirect(back)
    scope = request.POST.get("scope", "selected")
    queryset = filter_fleet(organization, flt)
    if scope != "filter":
        scope = "selected"
        selected = request.POST.getlist("vehicle")
        queryset = queryset.filter(public_id__in=_valid_uuids(selected))
    plan = bulk_plan(queryset, action)
    if not plan.total:
        messages.warning(request, "No vehicles were selected: tick some rows first.")
        return redirect(back)
    if request.POST.get("confirm") != "yes":
        context = _bulk_confirmation(request, plan, scope, flt, queryset, back)
        return render(request, "vehicles/bulk_confirm.html", context)
    if action == "defleet":
        result = fleet_actions.defleet_vehicles(queryset, user=request.user)
    else:
        try:
            credential = _credential_from(request, organization)
        except UnknownCredential:
            messages.error(
                request,
                "The chosen HM application does not exist (any more). Nothing was sent; "
                "choose the vehicles and an application again.",
            )
            return redirect(back)
        result = fleet_actions.request_clearances(
            queryset, user=request.user, credential=credential
        )
    common.report(request, result, verb=action)
    return redirect(back)


def _valid_uuids(values: list[str]) -> list[str]:
    valid = []
    for value in values[:10_000]:
        try:
            valid.append(str(uuid.UUID(value)))
        except ValueError:
            continue
    return valid


def _credential_from(request: OrganizationRequest, organization: Any) -> Credential | None:
    """The HM application chosen on the confirmation page (the first by name if none was)."""
    credentials = credentials_for(organization)
    # Not "credential": that is the fleet filter's parameter, posted along on this page.
    wanted = request.POST.get("send_with", "")
    if not wanted:
        return credentials.first()
    try:
        return credentials.get(public_id=uuid.UUID(wanted))
    except (ValueError, Credential.DoesNotExist):
        raise UnknownCredential from None


class UnknownCredential(Exception):
    """The chosen HM application is not this organization's (or no longer exists)."""


def _bulk_confirmation(
    request: OrganizationRequest,
    plan: Any,
    scope: str,
    flt: FleetFilter,
    queryset: Any,
    back: str,
) -> dict[str, Any]:
    """The confirmation page: what will happen (counted), the first vehicles, the picker."""
    sample = [common.decorate(vehicle) for vehicle in queryset[:BULK_SAMPLE_SIZE]]
    selected_ids = (
        [str(pk) for pk in queryset.values_list("public_id", flat=True)]
        if scope == "selected"
        else []
    )
    return {
        "action": plan.action,
        "action_label": BULK_ACTIONS[plan.action],
        "scope": scope,
        "filter_params": flt.as_params(),
        "vehicles": sample,
        "total": plan.total,
        "will_count": plan.will,
        "effects": plan.effects,
        "skipped": plan.skipped,
        "selected_ids": selected_ids,
        "credentials": [
            (str(c.public_id), credential_label(c.name, c.environment))
            for c in credentials_for(current_organization(request))
        ],
        "cancel_refusal_note": CANCEL_REFUSAL_NOTE if plan.pending else "",
        "back": back,
    }
