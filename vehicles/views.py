"""Fleet pages: overview (live counters and rows), add vehicle, vehicle detail, defleet, bulk actions.

One view + one template per screen; the live regions are `{% partialdef %}` blocks rendered alone
for htmx requests. Every object is looked up through the current organization (404 otherwise),
and every write checks the manager role first (403 for viewers).
"""

from __future__ import annotations

import time
import uuid

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling, push_url

from clearance.fields import encrypted_field_names
from clearance.models import Credential
from organizations.access import get_object_for_user, require_membership, require_role
from organizations.models import Role
from vehicles import onboarding
from vehicles.brands import BRAND_CHOICES
from vehicles.forms import (
    VehicleAddForm,
    VehicleEditForm,
    clean_vin_value,
    duplicate_vin_error,
    format_tags,
)
from vehicles.models import Vehicle
from vehicles.selectors import (
    CANCEL_REFUSAL_NOTE,
    DEFLEETABLE_STATUSES,
    NOT_REQUESTED,
    REONBOARD_STATUSES,
    STATUS_LABELS,
    STATUS_ORDER,
    cancel_refusal_expected,
    credential_label,
    filter_fleet,
    fleet_status_counts,
    is_terminal,
    last_heard_from_hm,
    parse_fleet_filter,
    status_help,
    vehicle_events,
    vehicles_with_clearance,
)

PAGE_SIZE = 50
WATCH_SECONDS = 60
WATCH_SESSION_KEY = "fleet_watch_until"
ROW_POLL_SECONDS = 3
COUNTERS_POLL_SECONDS = 5
FLEET_TEMPLATE = "vehicles/fleet.html"
DETAIL_TEMPLATE = "vehicles/vehicle_detail.html"


# --- helpers ---------------------------------------------------------------------------------------


def _url_or_none(name: str, *args) -> str | None:
    """A URL another part of the portal provides, or None while it does not exist yet."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def _clearance(vehicle: Vehicle):
    try:
        return vehicle.clearance
    except Vehicle.clearance.RelatedObjectDoesNotExist:
        return None


def _decorate(vehicle: Vehicle, *, watching: bool = False) -> Vehicle:
    """Attach what the templates need, so they never trigger a query."""
    clearance = _clearance(vehicle)
    status = clearance.status if clearance else None
    vehicle.cl = clearance
    vehicle.status = status or NOT_REQUESTED
    vehicle.status_label = STATUS_LABELS.get(status or NOT_REQUESTED, status)
    vehicle.is_terminal = is_terminal(status)
    # Live regions poll while not terminal, and for a while after an action (see _watch).
    vehicle.polls = not vehicle.is_terminal or watching
    vehicle.can_defleet = status in DEFLEETABLE_STATUSES
    vehicle.can_reonboard = status is None or status in REONBOARD_STATUSES
    return vehicle


def _with_messages(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Append pending messages as an out-of-band toast swap (htmx responses only)."""
    toasts = render_to_string("vehicles/_toasts_oob.html", request=request)
    response.write(toasts)
    return response


def _can_manage(request: HttpRequest) -> bool:
    membership = getattr(request, "membership", None)
    return bool(membership and membership.has_role(Role.MANAGER))


def _vehicle_for(request: HttpRequest, public_id, *, write: bool = False) -> Vehicle:
    """The current organization's vehicle (404 otherwise); `write` also needs the manager role."""
    vehicle = get_object_for_user(
        request,
        vehicles_with_clearance(),
        public_id=public_id,
    )
    if write:
        require_role(request, Role.MANAGER)
    return _decorate(vehicle, watching=_watching(request))


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


def _counters_context(counts: dict[str, int], flt, *, watching: bool = False) -> dict:
    return {
        "counts": counts,
        "counters_poll": bool(counts["in_flight"]) or watching,
        "counter_items": _counter_items(counts),
        "flt": flt,
        "counters_poll_seconds": COUNTERS_POLL_SECONDS,
    }


@require_GET
def fleet(request: HttpRequest) -> HttpResponse:
    if request.membership is None:
        return render(request, FLEET_TEMPLATE, {"no_membership": True})
    organization = request.organization
    flt = parse_fleet_filter(request.GET)
    page = Paginator(filter_fleet(organization, flt), PAGE_SIZE).get_page(request.GET.get("page"))
    watching = _watching(request)
    rows = [_decorate(vehicle, watching=watching) for vehicle in page.object_list]
    filter_query = urlencode(flt.as_params())
    export_url = _url_or_none("imports:export")
    context = {
        **_counters_context(fleet_status_counts(organization), flt, watching=watching),
        "page_obj": page,
        "rows": rows,
        "columns": _columns(flt),
        "statuses": [(status, STATUS_LABELS[status]) for status in (*STATUS_ORDER, NOT_REQUESTED)],
        "brands": BRAND_CHOICES,
        "credentials": list(
            Credential.objects.filter(organization=organization)
            .order_by("name")
            .values("public_id", "name", "environment")
        ),
        "can_manage": _can_manage(request),
        "filter_query": filter_query,
        "filter_params": flt.as_params(),
        "import_url": _url_or_none("imports:upload"),
        "export_url": f"{export_url}?{filter_query}" if export_url and filter_query else export_url,
        "row_poll_seconds": ROW_POLL_SECONDS,
        "counters_poll_seconds": COUNTERS_POLL_SECONDS,
    }
    if request.htmx and request.htmx.target == "fleet-table":
        context["counters_oob"] = True
        response = render(request, f"{FLEET_TEMPLATE}#fleet-table-response", context)
        # A clean, shareable URL in the address bar (no empty parameters).
        params = {**flt.as_params(), **({"page": page.number} if page.number > 1 else {})}
        return push_url(response, request.path + (f"?{urlencode(params)}" if params else ""))
    return render(request, FLEET_TEMPLATE, context)


@require_GET
def fleet_counters(request: HttpRequest) -> HttpResponse:
    """The counters alone (polled); polling stops once nothing is in flight."""
    membership = require_membership(request)
    counts = fleet_status_counts(membership.organization)
    context = _counters_context(
        counts, parse_fleet_filter(request.GET), watching=_watching(request)
    )
    html = render_to_string(f"{FLEET_TEMPLATE}#fleet-counters", context, request=request)
    if not context["counters_poll"]:
        return HttpResponseStopPolling(html)
    return HttpResponse(html)


@require_GET
def vehicle_row(request: HttpRequest, public_id) -> HttpResponse:
    """One table row (polled while its clearance is not terminal; 286 stops polling)."""
    vehicle = _vehicle_for(request, public_id)
    context = {
        "v": vehicle,
        "can_manage": _can_manage(request),
        "selected": str(vehicle.public_id) in request.GET.getlist("vehicle"),
        "row_poll_seconds": ROW_POLL_SECONDS,
    }
    html = render_to_string(f"{FLEET_TEMPLATE}#vehicle-row", context, request=request)
    if not vehicle.polls:
        return HttpResponseStopPolling(html)
    return HttpResponse(html)


# --- add a vehicle ---------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def vehicle_add(request: HttpRequest) -> HttpResponse:
    membership = require_role(request, Role.MANAGER)
    organization = membership.organization
    form = VehicleAddForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        response = _add_vehicle(request, form, organization)
        if response is not None:
            return response
    context = {
        "form": form,
        "credentials_url": _url_or_none("clearance:credentials"),
        "is_owner": membership.is_owner,
    }
    if request.htmx and request.method == "POST":
        return render(request, "vehicles/vehicle_add.html#add-form", context)
    return render(request, "vehicles/vehicle_add.html", context)


def _add_vehicle(request: HttpRequest, form: VehicleAddForm, organization) -> HttpResponse | None:
    """Save the vehicle and send its request; None (with the form's error) if it cannot be."""
    data = form.cleaned_data
    try:
        vehicle = onboarding.add_vehicle(
            organization=organization,
            user=request.user,
            vin=data["vin"],
            brand=data["brand"],
            license_plate=data["license_plate"],
            nickname=data["nickname"],
            tags=data["tags"],
            odometer_km=data["odometer_km"],
            credential=data["credential"],
        )
    except IntegrityError:
        # Added by someone else (or an import) since the form was checked.
        form.vin_warnings = []
        form.add_error(
            "vin",
            duplicate_vin_error(organization, data["vin"])
            or f"{data['vin']} is already in your fleet.",
        )
        return None
    messages.success(
        request,
        f"{vehicle.vin} was added and its clearance request is on its way to High Mobility.",
    )
    for warning in form.vin_warnings:
        messages.warning(request, warning)
    url = reverse("vehicles:detail", args=[vehicle.public_id])
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@require_GET
def vehicle_check_vin(request: HttpRequest) -> HttpResponse:
    """Inline VIN feedback while typing: errors, the check-digit warning, or "looks right"."""
    membership = require_membership(request)
    raw = request.GET.get("vin", "")
    error, warnings, vin = "", [], ""
    if raw.strip():
        try:
            vin, warnings = clean_vin_value(raw)
        except Exception as exc:  # a ValidationError with the sentence to show
            error = " ".join(getattr(exc, "messages", [str(exc)]))
        else:
            error = duplicate_vin_error(membership.organization, vin) or ""
            if error:
                warnings = []  # the vehicle is there already; its check digit is beside the point
    return render(
        request,
        "vehicles/vehicle_add.html#vin-feedback",
        {"vin_error": error, "vin_warnings": warnings, "vin_ok": bool(vin and not error)},
    )


# --- vehicle detail --------------------------------------------------------------------------------


def _detail_context(request: HttpRequest, vehicle: Vehicle) -> dict:
    clearance = vehicle.cl
    meaning, next_step = status_help(
        clearance.status if clearance else None,
        last_error=clearance.last_error if clearance else "",
    )
    credential = clearance.credential if clearance else None
    return {
        "vehicle": vehicle,
        "clearance": clearance,
        "meaning": meaning,
        "next_step": next_step,
        "retrying": vehicle.status == "queued" and bool(clearance.last_error),
        "credential_label": credential_label(credential.name, credential.environment)
        if credential
        else "",
        "last_heard": last_heard_from_hm(clearance),
        "events": list(vehicle_events(vehicle)[:100]),
        "can_manage": _can_manage(request),
        "tags_text": format_tags(vehicle.tags),
        "poll_seconds": ROW_POLL_SECONDS,
    }


@require_GET
def vehicle_detail(request: HttpRequest, public_id) -> HttpResponse:
    vehicle = _vehicle_for(request, public_id)
    context = _detail_context(request, vehicle)
    context["telemetry_url"] = _url_or_none("telemetry:panel", vehicle.public_id)
    context["confirm_defleet"] = request.GET.get("confirm") == "defleet"
    if vehicle.status == "pending":
        context["cancel_refusal_note"] = CANCEL_REFUSAL_NOTE
        context["cancel_refusal_expected"] = cancel_refusal_expected(
            vehicle.brand, vehicle.cl.requested_at
        )
    return render(request, DETAIL_TEMPLATE, context)


@require_GET
def vehicle_status(request: HttpRequest, public_id) -> HttpResponse:
    """Status, explanation and timeline (polled while not terminal; 286 stops polling)."""
    vehicle = _vehicle_for(request, public_id)
    html = render_to_string(
        f"{DETAIL_TEMPLATE}#vehicle-status", _detail_context(request, vehicle), request=request
    )
    if not vehicle.polls:
        return HttpResponseStopPolling(html)
    return HttpResponse(html)


@require_http_methods(["GET", "POST"])
def vehicle_edit(request: HttpRequest, public_id) -> HttpResponse:
    vehicle = _vehicle_for(request, public_id, write=True)
    form = VehicleEditForm(request.POST or None, instance=vehicle)
    if request.method == "POST" and form.is_valid():
        if form.has_changed():
            form.save()
            messages.success(request, f"The details of {vehicle.vin} were saved.")
        else:
            messages.info(request, "Nothing was changed.")
        return redirect("vehicles:detail", vehicle.public_id)
    return render(request, "vehicles/vehicle_edit.html", {"form": form, "vehicle": vehicle})


def _after_action(request: HttpRequest, vehicle: Vehicle) -> HttpResponse:
    if request.htmx:
        vehicle = _vehicle_for(request, vehicle.public_id)
        response = render(
            request, f"{DETAIL_TEMPLATE}#vehicle-status", _detail_context(request, vehicle)
        )
        return _with_messages(request, response)
    return redirect("vehicles:detail", vehicle.public_id)


@require_POST
def vehicle_defleet(request: HttpRequest, public_id) -> HttpResponse:
    vehicle = _vehicle_for(request, public_id, write=True)
    result = onboarding.defleet_vehicle(vehicle, user=request.user)
    _report(request, result, verb="defleet")
    return _after_action(request, vehicle)


@require_POST
def vehicle_reonboard(request: HttpRequest, public_id) -> HttpResponse:
    vehicle = _vehicle_for(request, public_id, write=True)
    credential = None
    if vehicle.cl is None or vehicle.cl.credential_id is None:
        credential = (
            Credential.objects.filter(organization=request.organization).order_by("name").first()
        )
        if credential is None:
            messages.error(
                request,
                "This organization has no High Mobility credential yet: an owner needs to add "
                "one before vehicles can be sent.",
            )
            return _after_action(request, vehicle)
    result = onboarding.request_clearances([vehicle], user=request.user, credential=credential)
    _report(request, result, verb="request")
    return _after_action(request, vehicle)


def _plural(n: int, word: str = "vehicle") -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _report(request: HttpRequest, result: onboarding.ActionResult, *, verb: str) -> None:
    """Turn an action summary into toasts a fleet manager understands."""
    if verb == "defleet":
        if result.background:
            done = f"Defleeting {_plural(result.done)} in the background"
        else:
            done = f"Defleet sent for {_plural(result.done)}"
    else:
        done = f"Clearance requested for {_plural(result.done)}"
    parts = [done] if result.done or not (result.skipped or result.failed) else []
    if result.skipped:
        parts.append(f"{result.skipped} skipped ({result.skipped_reason})")
    if result.failed:
        parts.append(f"{result.failed} not done")
    if parts:
        text = "; ".join(parts) + "."
        if result.done:
            text += " Statuses update on this page as High Mobility answers."
        level = messages.success if result.done and not result.failed else messages.warning
        level(request, text[0].upper() + text[1:])
    for problem in result.problems[:5]:
        messages.error(request, problem)
    for notice in result.notices[:5]:
        messages.warning(request, notice)
    if result.done:
        _watch(request)


def _watch(request: HttpRequest) -> None:
    """Keep polling for a while after an action, even rows that look terminal (a background
    defleet turns an approved vehicle into revoking a moment later)."""
    request.session[WATCH_SESSION_KEY] = time.time() + WATCH_SECONDS


def _watching(request: HttpRequest) -> bool:
    return request.session.get(WATCH_SESSION_KEY, 0) > time.time()


# --- bulk actions ----------------------------------------------------------------------------------

BULK_ACTIONS = {"request": "Request clearance", "defleet": "Defleet"}


@require_POST
def fleet_bulk(request: HttpRequest) -> HttpResponse:
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
    vehicles = [_decorate(vehicle) for vehicle in queryset]
    if not vehicles:
        messages.warning(request, "No vehicles were selected: tick some rows first.")
        return redirect(back)
    if request.POST.get("confirm") != "yes":
        return render(
            request,
            "vehicles/bulk_confirm.html",
            _bulk_preview(request, action, scope, flt, vehicles, back),
        )
    if action == "defleet":
        result = onboarding.defleet_vehicles(vehicles, user=request.user)
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
        result = onboarding.request_clearances(vehicles, user=request.user, credential=credential)
    _report(request, result, verb=action)
    return redirect(back)


def _valid_uuids(values: list[str]) -> list[str]:

    valid = []
    for value in values[:10_000]:
        try:
            valid.append(str(uuid.UUID(value)))
        except ValueError:
            continue
    return valid


def _credential_from(request: HttpRequest, organization) -> Credential | None:
    """The HM application chosen on the confirmation page (the first by name if none was)."""
    credentials = Credential.objects.filter(organization=organization).order_by("name")
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


def _bulk_preview(request, action, scope, flt, vehicles, back) -> dict:
    pending = []
    if action == "defleet":
        will = [v for v in vehicles if v.can_defleet]
        pending = [v for v in will if v.status == "pending"]
        revoke = len(will) - len(pending)
        effects = []
        if revoke:
            effects.append(f"{revoke} approved vehicle(s) lose data access (revoking → revoked)")
        if pending:
            effects.append(
                f"{len(pending)} pending request(s) are withdrawn (canceling → canceled) "
                "where the carmaker allows it"
            )
        refused = sum(1 for v in pending if cancel_refusal_expected(v.brand, v.cl.requested_at))
        if refused:
            effects.append(
                f"{refused} of these pending request(s) will most likely be refused (the "
                "carmaker does not allow it, or the request is less than a day old): they stay "
                "Pending, with High Mobility's reason on their row"
            )
    else:
        will = [v for v in vehicles if v.can_reonboard]  # queued ones are on their way already
        effects = (
            [f"{len(will)} vehicle(s) are sent to High Mobility for clearance"] if will else []
        )
    skipped = len(vehicles) - len(will)
    credentials = list(
        Credential.objects.filter(organization=request.organization)
        .defer(*encrypted_field_names(Credential))  # a picker: names only
        .order_by("name")
    )
    return {
        "action": action,
        "action_label": BULK_ACTIONS[action],
        "scope": scope,
        "filter_params": flt.as_params(),
        "vehicles": vehicles[:20],
        "total": len(vehicles),
        "will_count": len(will),
        "effects": effects,
        "skipped": skipped,
        "selected_ids": [str(v.public_id) for v in vehicles] if scope == "selected" else [],
        "credentials": [
            (str(c.public_id), credential_label(c.name, c.environment)) for c in credentials
        ],
        "cancel_refusal_note": CANCEL_REFUSAL_NOTE if pending else "",
        "back": back,
    }
