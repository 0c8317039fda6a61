"""One vehicle: add it (with live VIN feedback), its page with status and timeline, edit,
defleet and request clearance again."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db import IntegrityError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from clearance import statuses
from clearance.selectors import credentials_for, vehicle_events
from clearance.services import fleet_actions
from clearance.statuses import CANCEL_REFUSAL_NOTE, cancel_refusal_expected, status_help
from clearance.wording import credential_label, last_heard_from_hm
from organizations.access import current_organization, require_membership, require_role
from organizations.http import OrganizationRequest
from organizations.models import Role
from vehicles.forms import (
    VehicleAddForm,
    VehicleEditForm,
    clean_vin_value,
    duplicate_vin_error,
    format_tags,
)
from vehicles.views import common


@require_http_methods(["GET", "POST"])
def vehicle_add(request: OrganizationRequest) -> HttpResponse:
    membership = require_role(request, Role.MANAGER)
    organization = membership.organization
    form = VehicleAddForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        response = _add_vehicle(request, form, organization)
        if response is not None:
            return response
    context = {
        "form": form,
        "credentials_url": common.url_or_none("clearance:credentials"),
        "is_owner": membership.is_owner,
    }
    if request.htmx and request.method == "POST":
        return render(request, "vehicles/vehicle_add.html#add-form", context)
    return render(request, "vehicles/vehicle_add.html", context)


def _add_vehicle(
    request: OrganizationRequest, form: VehicleAddForm, organization
) -> HttpResponse | None:
    """Save the vehicle and send its request; None (with the form's error) if it cannot be."""
    data = form.cleaned_data
    try:
        vehicle = fleet_actions.add_vehicle(
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
def vehicle_check_vin(request: OrganizationRequest) -> HttpResponse:
    """Inline VIN feedback while typing: errors, the check-digit warning, or "looks right"."""
    membership = require_membership(request)
    raw = request.GET.get("vin", "")
    error, vin = "", ""
    warnings: list[str] = []
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


def _detail_context(request: OrganizationRequest, vehicle: common.FleetRow) -> dict[str, Any]:
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
        "retrying": vehicle.status == "queued" and bool(clearance and clearance.last_error),
        "credential_label": credential_label(credential.name, credential.environment)
        if credential
        else "",
        "last_heard": last_heard_from_hm(clearance),
        "events": list(vehicle_events(vehicle.vehicle)[:100]),
        "can_manage": common.can_manage(request),
        "tags_text": format_tags(vehicle.tags),
        "tag_links": [
            f"{key}={value}" if value else key for key, value in (vehicle.tags or {}).items()
        ]
        if isinstance(vehicle.tags, dict)
        else [],
        "poll_seconds": common.ROW_POLL_SECONDS,
        "not_defleetable": statuses.NOT_DEFLEETABLE_WORDS.get(
            vehicle.status, "This vehicle cannot be defleeted in its current status."
        ),
        **_cancel_context(vehicle),
    }


def _cancel_context(vehicle: common.FleetRow) -> dict[str, str]:
    """What the defleet dialog says of a pending request (HM may refuse to withdraw it)."""
    if vehicle.status != statuses.S.PENDING:
        return {}
    return {
        "cancel_refusal_note": CANCEL_REFUSAL_NOTE,
        "cancel_refusal_expected": cancel_refusal_expected(
            vehicle.brand, vehicle.cl.requested_at if vehicle.cl else None
        ),
    }


# Sent with every answer that re-renders a changed clearance: regions another app renders (the
# telemetry panel) listen for it and reload at once (docs/architecture.md, "Live updates").
CLEARANCE_CHANGED = "fleetportal:clearance-changed"


def _live_response(
    request: OrganizationRequest, vehicle: common.FleetRow, *, changed: bool
) -> HttpResponse:
    """The clearance card, with the facts card and the defleet dialog out of band: every region
    of the vehicle page that depends on the clearance, in one answer."""
    context = {**_detail_context(request, vehicle), "live_oob": True}
    html = render_to_string(f"{common.DETAIL_TEMPLATE}#vehicle-live", context, request=request)
    response = HttpResponse(html) if vehicle.polls else HttpResponseStopPolling(html)
    if changed:
        response["HX-Trigger"] = CLEARANCE_CHANGED
    return response


@require_GET
def vehicle_detail(request: OrganizationRequest, public_id) -> HttpResponse:
    vehicle = common.vehicle_for(request, public_id)
    context = _detail_context(request, vehicle)
    context["telemetry_url"] = common.url_or_none("telemetry:panel", vehicle.public_id)
    context["confirm_defleet"] = request.GET.get("confirm") == "defleet"
    return render(request, common.DETAIL_TEMPLATE, context)


@require_GET
def vehicle_status(request: OrganizationRequest, public_id) -> HttpResponse:
    """Every region that depends on the clearance (polled while it is in flight; 286 stops
    polling). ``shown`` is the status the page shows: when it differs, HX-Trigger tells the
    regions other apps render (the telemetry panel) to reload too."""
    vehicle = common.vehicle_for(request, public_id)
    shown = request.GET.get("shown")
    return _live_response(request, vehicle, changed=shown is not None and shown != vehicle.status)


@require_http_methods(["GET", "POST"])
def vehicle_edit(request: OrganizationRequest, public_id) -> HttpResponse:
    vehicle = common.vehicle_for(request, public_id, write=True)
    form = VehicleEditForm(request.POST or None, instance=vehicle.vehicle)
    if request.method == "POST" and form.is_valid():
        if form.has_changed():
            form.save()
            messages.success(request, f"The details of {vehicle.vin} were saved.")
        else:
            messages.info(request, "Nothing was changed.")
        return redirect("vehicles:detail", vehicle.public_id)
    return render(request, "vehicles/vehicle_edit.html", {"form": form, "vehicle": vehicle})


def _after_action(request: OrganizationRequest, vehicle: common.FleetRow) -> HttpResponse:
    if request.htmx:
        vehicle = common.vehicle_for(request, vehicle.public_id)
        return common.with_messages(request, _live_response(request, vehicle, changed=True))
    return redirect("vehicles:detail", vehicle.public_id)


@require_POST
def vehicle_defleet(request: OrganizationRequest, public_id) -> HttpResponse:
    vehicle = common.vehicle_for(request, public_id, write=True)
    result = fleet_actions.defleet_vehicle(vehicle.vehicle, user=request.user)
    common.report(request, result, verb="defleet")
    return _after_action(request, vehicle)


@require_POST
def vehicle_reonboard(request: OrganizationRequest, public_id) -> HttpResponse:
    vehicle = common.vehicle_for(request, public_id, write=True)
    credential = None
    if vehicle.cl is None or vehicle.cl.credential_id is None:
        credential = credentials_for(current_organization(request)).first()
        if credential is None:
            messages.error(
                request,
                "This organization has no High Mobility credential yet: an owner needs to add "
                "one before vehicles can be sent.",
            )
            return _after_action(request, vehicle)
    result = fleet_actions.request_clearances(
        [vehicle.vehicle], user=request.user, credential=credential
    )
    common.report(request, result, verb="request")
    return _after_action(request, vehicle)
