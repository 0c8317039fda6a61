"""The fleet overview: live counters and rows, and bulk actions on selected rows or on
everything matching the filter (confirmed first, counted without loading the vehicles)."""

from __future__ import annotations

import uuid
import zlib
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import push_url

from clearance import statuses
from clearance.models import Credential
from clearance.selectors import (
    BULK_SAMPLE_SIZE,
    FleetFilter,
    FleetPaginator,
    bulk_plan,
    credentials_for,
    filter_fleet,
    fleet_count,
    fleet_status_counts,
    parse_fleet_filter,
    vehicles_with_clearance,
)
from clearance.services import fleet_actions
from clearance.statuses import ALWAYS_COUNTED, CANCEL_REFUSAL_NOTE, LABELS, NOT_REQUESTED, ORDER
from clearance.wording import credential_label
from organizations.access import current_organization, require_membership, require_role
from organizations.http import OrganizationRequest
from organizations.models import Role
from telemetry import fleet_columns
from telemetry.selectors import places_of
from vehicles.brands import BRAND_CHOICES
from vehicles.views import common

# --- fleet overview --------------------------------------------------------------------------------

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
        (status, LABELS[status], counts[status])
        for status in (*ORDER, NOT_REQUESTED)
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
        row.tele = (
            fleet_columns.cells(row.vehicle, places) if statuses.data_flows(row.status) else None
        )
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


def _counters_context(counts: dict[str, int], flt, *, matching: int) -> dict:
    return {
        "counts": counts,
        "counter_items": _counter_items(counts),
        "flt": flt,
        "matching": matching,  # vehicles matching the filter (the whole fleet without one)
        # Changes whenever a counter or the "N of M match" line would (the poll sends it back).
        "counters_version": format(
            zlib.crc32(repr((sorted(counts.items()), matching)).encode()), "08x"
        ),
    }


def _live_settings() -> dict[str, int]:
    """The one poll of the fleet page (static/js/fleet.js): fast while things move, backing off
    after a quiet minute, stopped while the tab is hidden."""
    return {
        "live_flowing_ms": int(settings.FLEET_LIVE_POLL_FLOWING_SECONDS * 1000),
        "live_flowing_for_ms": int(settings.FLEET_LIVE_FLOWING_SECONDS * 1000),
        "live_fast_ms": int(settings.FLEET_LIVE_POLL_SECONDS * 1000),
        "live_slow_ms": int(settings.FLEET_LIVE_POLL_MAX_SECONDS * 1000),
        "live_quiet_ms": int(settings.FLEET_LIVE_QUIET_SECONDS * 1000),
    }


@require_GET
def fleet(request: OrganizationRequest) -> HttpResponse:
    if request.membership is None:
        return render(request, common.FLEET_TEMPLATE, {"no_membership": True})
    organization = request.membership.organization
    flt = parse_fleet_filter(request.GET)
    counts = fleet_status_counts(organization)
    # The newest telemetry comes in the same query (a one-to-one join), never per row.
    vehicles = filter_fleet(organization, flt).select_related("latest_telemetry")
    paginator = FleetPaginator(vehicles, common.PAGE_SIZE, count=fleet_count(flt, counts), sort=flt)
    page = paginator.get_page(request.GET.get("page"))
    rows = [common.decorate(vehicle) for vehicle in page.object_list]
    filter_query = urlencode(flt.as_params())
    export_url = common.url_or_none("imports:export")
    context = {
        **_counters_context(counts, flt, matching=page.paginator.count),
        **_live_settings(),
        "bell_rides_live": True,
        "page_obj": page,
        "rows": rows,
        "columns": _columns(flt),
        "statuses": [(status, LABELS[status]) for status in (*ORDER, NOT_REQUESTED)],
        "brands": BRAND_CHOICES,
        "credentials": list(
            credentials_for(organization).values("public_id", "name", "environment")
        ),
        "can_manage": common.can_manage(request),
        "filter_query": filter_query,
        "filter_params": flt.as_params(),
        "import_url": common.url_or_none("imports:upload"),
        "export_url": f"{export_url}?{filter_query}" if export_url and filter_query else export_url,
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


def _matching(organization: Any, flt: FleetFilter, counts: dict[str, int]) -> int:
    return filter_fleet(organization, flt).count() if flt.active else counts["total"]


@require_GET
def fleet_counters(request: OrganizationRequest) -> HttpResponse:
    """The counters alone (the fleet poll brings them along; this is the region on its own)."""
    membership = require_membership(request)
    flt = parse_fleet_filter(request.GET)
    counts = fleet_status_counts(membership.organization)
    context = _counters_context(
        counts, flt, matching=_matching(membership.organization, flt, counts)
    )
    return render(request, f"{common.FLEET_TEMPLATE}#fleet-counters", context)


@require_GET
def vehicle_row(request: OrganizationRequest, public_id) -> HttpResponse:
    """One table row on its own (the fleet poll brings changed rows along)."""
    vehicle = common.vehicle_for(request, public_id)
    context = {
        "v": vehicle,
        "can_manage": common.can_manage(request),
        "selected": str(vehicle.public_id) in request.GET.getlist("vehicle"),
        **_telemetry_context(
            request,
            [vehicle],
            parse_fleet_filter(request.GET),
            with_places=statuses.data_flows(vehicle.status),
        ),
    }
    return render(request, f"{common.FLEET_TEMPLATE}#vehicle-row", context)


# At most this many rows are checked per poll (a page shows PAGE_SIZE).
LIVE_MAX_ROWS = 2 * common.PAGE_SIZE


def _shown_rows(text: str) -> dict[str, str]:
    """ "id.version,id.version" (the rows on screen) -> {public id: version}."""
    shown: dict[str, str] = {}
    for item in text.split(",")[:LIVE_MAX_ROWS]:
        public_id, _, version = item.partition(".")
        try:
            shown[str(uuid.UUID(public_id))] = version
        except ValueError:
            continue
    return shown


@require_GET
def fleet_live(request: OrganizationRequest) -> HttpResponse:
    """The fleet page's one poll: the rows on screen whose version moved since the page's last
    answer, and the counters and "N of M match" line when they moved, in one answer (out of band
    swaps). A few queries whatever the number of rows on screen."""
    membership = require_membership(request)
    organization = membership.organization
    flt = parse_fleet_filter(request.GET)
    shown = _shown_rows(request.GET.get("rows", ""))
    selected = set(request.GET.get("sel", "").split(","))
    changed = []
    gone = set(shown)
    if shown:
        for vehicle in (
            vehicles_with_clearance()
            .select_related("latest_telemetry")
            .filter(organization=organization, public_id__in=list(shown))
        ):
            key = str(vehicle.public_id)
            gone.discard(key)
            row = common.decorate(vehicle, selected=key in selected)
            if row.version != shown[key]:
                changed.append(row)
    counts = fleet_status_counts(organization)
    counters = _counters_context(counts, flt, matching=_matching(organization, flt, counts))
    counters_moved = counters["counters_version"] != request.GET.get("c")
    context = {
        **counters,
        **_live_settings(),
        # Changed rows come with their telemetry columns, like the page's.
        **(_telemetry_context(request, changed, flt) if changed else {}),
        "live_rows": changed,
        "live_gone": sorted(gone),
        "live_counters": counters_moved,
        "live_changed": len(changed) + len(gone) + int(counters_moved),
        "can_manage": common.can_manage(request),
        "counters_oob": True,
        "summary_oob": True,
        "live_query": urlencode(flt.as_params()),
    }
    return render(request, f"{common.FLEET_TEMPLATE}#fleet-live", context)


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
