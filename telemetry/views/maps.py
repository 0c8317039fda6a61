"""The fleet map (last positions, one compact JSON for every vehicle) and the named places."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clearance import statuses
from organizations.access import current_organization, get_object_for_user, require_role
from organizations.http import OrganizationRequest
from organizations.models import Role
from telemetry import selectors
from telemetry.forms import PlaceForm
from telemetry.freshness import freshness
from telemetry.models import Place
from telemetry.views.common import (
    clearance_label,
    exact_time,
    shows_operator_hints,
    vehicle_detail_url_for,
)
from vehicles import geo as place_rules
from vehicles.models import Vehicle

# The table under the map lists at most this many vehicles (the map shows them all).
MAP_TABLE_ROWS = 500
# The fleet map's JSON: one array per vehicle, in this order.
MAP_JSON_FIELDS = (
    "id",
    "label",
    "plate",
    "status",
    "lat",
    "lon",
    "seen",
    "freshness",
    "freshness_words",
    "battery",
    "fuel",
    "place",
)


def _percent(level: float | None) -> int | None:
    return None if level is None else round(level * 100)


def _map_rows(
    organization: Any, *, show_all: bool, limit: int | None = None
) -> tuple[list[dict[str, Any]], list[Place]]:
    """The map's vehicles as dicts (status, place and freshness in words), and the places."""
    known_places = selectors.places_of(organization)
    rows = selectors.fleet_map_rows(organization, approved_only=not show_all)
    if limit is not None:
        rows = rows[:limit]
    now = timezone.now()
    out = []
    for pid, vin, nickname, plate, status, lat, lon, position_at, battery, fuel, seen in rows:
        seen = seen or position_at
        fresh = freshness(seen, now)
        place = place_rules.place_at(lat, lon, known_places)
        out.append(
            {
                "id": str(pid),
                "vin": vin,
                "label": nickname or plate or vin,
                "plate": plate if plate and plate != (nickname or plate) else "",
                "status": status or "",
                "status_label": clearance_label(status),
                "lat": round(lat, 6),
                "lon": round(lon, 6),
                "position_at": position_at,
                "seen_at": seen,
                "seen": exact_time(seen),
                "freshness": fresh.state,
                "freshness_words": fresh.words,
                "battery": _percent(battery),
                "fuel": _percent(fuel),
                "place": place.name if place else "",
            }
        )
    return out, known_places


@require_GET
def fleet_map(request: OrganizationRequest) -> HttpResponse:
    """Last positions. By default only vehicles whose data access is approved (?show=all: all).

    The page lists the first MAP_TABLE_ROWS vehicles; the map loads every one from
    ``fleet_map_data`` (one compact JSON).
    """
    organization = current_organization(request)
    show_all = request.GET.get("show") == "all"
    rows, known_places = _map_rows(organization, show_all=show_all, limit=MAP_TABLE_ROWS)
    positioned = selectors.fleet_map_rows(organization, approved_only=False).count()
    approved = selectors.fleet_map_rows(organization, approved_only=True).count()
    shown = positioned if show_all else approved
    total = Vehicle.objects.filter(organization=organization).count()
    data_url = reverse("telemetry:fleet_map_data") + ("?show=all" if show_all else "")
    return render(
        request,
        "telemetry/fleet_map.html",
        {
            "rows": rows,
            "shown_count": shown,
            "more_rows": max(0, shown - len(rows)),
            "data_url": data_url,
            "places": known_places,
            "show_all": show_all,
            "hidden_count": positioned - approved,
            "without_position": total - positioned,
            "tile_url": settings.MAP_TILE_URL,
            "tile_attribution": settings.MAP_TILE_ATTRIBUTION,
            "operator_hints": shows_operator_hints(request),
        },
    )


@require_GET
def fleet_map_data(request: OrganizationRequest) -> JsonResponse:
    """Every vehicle of the map in one compact JSON: {"fields": [...], "vehicles": [[...]]},
    statuses and places by index, the vehicle page's URL as a template."""
    organization = current_organization(request)
    rows, known_places = _map_rows(organization, show_all=request.GET.get("show") == "all")
    status_index: dict[str, int] = {}
    # [code, label, whether data flows]: the map greys vehicles without data access.
    status_list: list[list[Any]] = []
    place_index = {place.name: i for i, place in enumerate(known_places)}
    vehicles = []
    for r in rows:
        if r["status"] not in status_index:
            status_index[r["status"]] = len(status_list)
            status_list.append([r["status"], r["status_label"], statuses.data_flows(r["status"])])
        vehicles.append(
            [
                r["id"],
                r["label"],
                r["plate"],
                status_index[r["status"]],
                r["lat"],
                r["lon"],
                r["seen"],
                r["freshness"],
                r["freshness_words"],
                r["battery"],
                r["fuel"],
                place_index.get(r["place"], -1),
            ]
        )
    sample = "00000000-0000-0000-0000-000000000000"
    payload = {
        "fields": MAP_JSON_FIELDS,
        "url": vehicle_detail_url_for(sample).replace(sample, "{id}"),
        "statuses": status_list,
        "places": selectors.place_json(known_places),
        "vehicles": vehicles,
    }
    response = JsonResponse(payload, json_dumps_params={"separators": (",", ":")})
    response["Cache-Control"] = "private, no-store"
    return response


def _can_edit_places(request: OrganizationRequest) -> bool:
    membership = getattr(request, "membership", None)
    return bool(membership and membership.can_manage)


@require_http_methods(["GET", "POST"])
def places(request: OrganizationRequest) -> HttpResponse:
    """The organization's named places; owners and managers add one (typed or drawn)."""
    organization = current_organization(request)
    form = None
    if _can_edit_places(request):
        form = PlaceForm(request.POST or None, organization=organization)
        if request.method == "POST" and form.is_valid():
            place = form.save()
            messages.success(request, f"Place “{place.name}” saved.")
            return redirect("telemetry:places")
    elif request.method == "POST":
        require_role(request, Role.MANAGER)
    rows = selectors.places_of(organization)
    return render(
        request,
        "telemetry/places.html",
        {
            "form": form,
            "places": rows,
            "places_json": json.dumps(selectors.place_json(rows)),
            "tile_url": settings.MAP_TILE_URL,
            "tile_attribution": settings.MAP_TILE_ATTRIBUTION,
            "operator_hints": shows_operator_hints(request),
        },
        status=400 if form is not None and form.errors else 200,
    )


@require_POST
def place_delete(request: OrganizationRequest, public_id: Any) -> HttpResponse:
    place = get_object_for_user(request, Place, role=Role.MANAGER, public_id=public_id)
    name = place.name
    place.delete()
    messages.success(request, f"Place “{name}” deleted.")
    return redirect("telemetry:places")
