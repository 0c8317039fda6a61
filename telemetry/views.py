"""Telemetry pages: the vehicle panel (htmx partial), Refresh, and the fleet map."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clearance import statuses
from imports.exports import csv_response
from organizations.access import current_organization, get_object_for_user, require_role
from organizations.http import OrganizationRequest
from organizations.models import Role
from telemetry import fleet_columns, history, pull, selectors, services, trips
from telemetry.charts import Series, line_chart
from telemetry.forms import PlaceForm
from telemetry.freshness import freshness
from telemetry.models import Place
from vehicles import geo as place_rules
from vehicles.models import Vehicle

PANEL_TEMPLATE = "telemetry/vehicle_telemetry.html"
# While a refresh is in flight the panel polls quickly; otherwise slowly, so streamed data shows.
FAST_POLL_SECONDS = 2
SLOW_POLL_SECONDS = 30
# Trips on the vehicle page: the newest this many listed, drawn on its map.
TRIPS_LISTED = 50
TRIPS_DRAWN = 20
# How long the answer to a Refresh stays on the panel ("Refreshed 2 minutes ago: ...").
ANSWER_SHOWN_FOR = timedelta(minutes=10)


def _vehicle(request: OrganizationRequest, public_id: Any) -> Vehicle:
    return get_object_for_user(
        request, Vehicle.objects.select_related("clearance"), public_id=public_id
    )


def vehicle_detail_url(vehicle: Vehicle) -> str:
    """The dashboard's vehicle page if it exists, else our standalone telemetry page."""
    return vehicle_detail_url_for(vehicle.public_id)


def vehicle_detail_url_for(public_id: Any) -> str:
    for name in ("vehicles:detail", "vehicles:vehicle_detail"):
        try:
            return reverse(name, args=[public_id])
        except NoReverseMatch:
            continue
    return reverse("telemetry:panel", args=[public_id])


def shows_operator_hints(request: OrganizationRequest) -> bool:
    """Whether to name operator settings (MAP_TILE_URL ...): staff and owners can act on them."""
    if getattr(request.user, "is_staff", False):
        return True
    membership = getattr(request, "membership", None)
    return bool(membership and membership.is_owner)


def _status_time(status: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(status["at"])
    except (KeyError, TypeError, ValueError):
        return None


def pull_notice(status: dict[str, Any] | None, now: datetime | None = None) -> dict | None:
    """What the panel says about the last pull, or None.

    "Refreshed" / "Refresh failed" only ever answer a Refresh somebody pressed (and only for a
    few minutes). A scheduled pull says nothing when it worked (the panel shows when data last
    arrived) and, when it failed, says so without calling it a refresh.
    """
    if not status:
        return None
    state = status.get("state")
    at = _status_time(status)
    if status.get("requested"):
        if state in ("queued", "running"):
            return {"state": state, "label": "", "at": None, "message": status.get("message")}
        labels = {"ok": "Refreshed", "failed": "Refresh failed", "retrying": "Retrying"}
        if state not in labels or at is None:
            return None
        if state != "retrying" and (now or timezone.now()) - at > ANSWER_SHOWN_FOR:
            return None
        return {"state": state, "label": labels[state], "at": at, "message": status["message"]}
    if state in ("failed", "retrying") and at is not None:
        return {
            "state": f"auto-{state}",
            "label": "The last automatic update got no data",
            "at": at,
            "message": status.get("message"),
        }
    return None


def _charts(rows: list[dict[str, Any]]) -> dict[str, str]:
    def series(field: str, scale: float = 1.0) -> list:
        return [(r["captured_at"], None if r[field] is None else r[field] * scale) for r in rows]

    charts = {
        "odometer": line_chart(
            [Series("Odometer", series("odometer_km"), "chart-odometer")],
            title="Odometer",
            unit="km",
            floor=0,
        ),
        "energy": line_chart(
            [
                Series("Fuel", series("fuel_level", 100), "chart-fuel"),
                Series("Battery", series("battery_level", 100), "chart-battery"),
            ],
            title="Fuel / battery",
            unit="%",
            y_min=0,
            y_max=100,
            floor=0,
            value_format=lambda v: f"{v:.0f}",  # the chart adds the unit
        ),
        "speed": line_chart(
            [Series("Speed", series("speed_kmh"), "chart-speed")],
            title="Speed",
            unit="km/h",
            y_min=0,
            floor=0,
            # A parked car (every speed 0) gets a 0 to 10 km/h axis.
            min_span=10,
        ),
    }
    # Built from escaped text only (see charts.py).
    return {name: mark_safe(svg) for name, svg in charts.items()}  # noqa: S308


def _panel_context(request: OrganizationRequest, vehicle: Vehicle) -> dict[str, Any]:
    # Status first, data second: a pull that finishes in between then shows "done" only with
    # its data (the other order could show "Refreshed" above the old values and stop polling).
    status = pull.get_pull_status(vehicle)
    snapshots = selectors.recent_snapshots(vehicle)
    # Only a Refresh somebody pressed makes the panel "busy"; a scheduled pull does not.
    busy = pull.pull_is_waiting(status, requested_only=True)
    refresh_unavailable = pull.refresh_unavailable_reason(vehicle, has_data=bool(snapshots))
    chosen = history.window(request.GET)
    track = selectors.track(vehicle)
    newest = track[-1] if track else None
    known_places = selectors.places_of(vehicle.organization)
    vehicle_trips = trips.trips_for(vehicle, chosen.since, chosen.until, known_places)
    return {
        "trips": list(reversed(vehicle_trips))[:TRIPS_LISTED],
        "trip_count": len(vehicle_trips),
        "trip_km": sum(t.distance_km for t in vehicle_trips),
        "trips_json": json.dumps(trips.trip_json(vehicle_trips[-TRIPS_DRAWN:])),
        "place": place_rules.place_at(newest["lat"], newest["lon"], known_places)
        if newest
        else None,
        "places_json": json.dumps(selectors.place_json(known_places)),
        "vehicle": vehicle,
        "refresh_unavailable": refresh_unavailable,
        "can_refresh": not refresh_unavailable,
        "pull_notice": pull_notice(status),
        "fields": selectors.latest_fields(snapshots),
        "doors": selectors.latest_doors(snapshots),
        "latest": snapshots[0] if snapshots else None,
        "latest_at_receive_time": bool(
            snapshots and services.captured_at_is_receive_time(snapshots[0])
        ),
        "charts": _charts(history.series(vehicle, chosen.since, chosen.until)),
        "window": chosen,
        "max_points": history.MAX_POINTS,
        "ranges": [(key, label) for key, (label, _) in history.RANGES.items()],
        "range_query": urlencode(chosen.as_params()),
        "retention_days": settings.TELEMETRY_RETENTION_DAYS,
        "retention_start": history.retention_start(timezone.now()).date(),
        "track": track,
        "track_json": json.dumps(track),
        "tile_url": settings.MAP_TILE_URL,
        "tile_attribution": settings.MAP_TILE_ATTRIBUTION,
        "busy": busy,
        "poll_seconds": FAST_POLL_SECONDS if busy else SLOW_POLL_SECONDS,
        "stale_after_minutes": max(1, settings.TELEMETRY_STALE_AFTER_SECONDS // 60),
        "operator_hints": shows_operator_hints(request),
        "detail_url": vehicle_detail_url(vehicle),
        # htmx requests come from the vehicle page, which has its own card and heading.
        "embedded": bool(request.htmx),
    }


@require_GET
def panel(request: OrganizationRequest, public_id: Any) -> HttpResponse:
    vehicle = _vehicle(request, public_id)
    context = _panel_context(request, vehicle)
    template = f"{PANEL_TEMPLATE}#panel" if request.htmx else PANEL_TEMPLATE
    return render(request, template, context)


@require_POST
def refresh(request: OrganizationRequest, public_id: Any) -> HttpResponse:
    """Queue a pull for this vehicle; the panel then polls until the result is in."""
    vehicle = _vehicle(request, public_id)
    pull.request_refresh(vehicle)  # does nothing unless the clearance is approved
    if not request.htmx:
        # Without JavaScript the form is on the standalone panel page: back to it.
        return redirect("telemetry:panel", public_id=vehicle.public_id)
    return render(request, f"{PANEL_TEMPLATE}#panel", _panel_context(request, vehicle))


def exact_time(value: datetime | None) -> str:
    """The portal's date format (the same as the reltime filter's exact time), server-side."""
    if value is None:
        return ""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def clearance_label(status: str | None) -> str:
    if not status:
        return "No clearance"
    return statuses.label(status)


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


def _distance_rows(organization: Any, since: datetime, until: datetime) -> list[dict[str, Any]]:
    rows = []
    for r in trips.fleet_distance(organization, since, until):
        rows.append(
            {
                "id": r["vehicle__public_id"],
                "vin": r["vehicle__vin"],
                "label": r["vehicle__nickname"] or r["vehicle__license_plate"] or r["vehicle__vin"],
                "plate": r["vehicle__license_plate"],
                "distance_km": r["distance_km"],
                "first_km": r["first_km"],
                "last_km": r["last_km"],
                "snapshots": r["snapshots"],
            }
        )
    return rows


@require_GET
def fleet_distance(request: OrganizationRequest) -> HttpResponse | StreamingHttpResponse:
    """Distance per vehicle over a period (default: the last 7 days), as a page or CSV."""
    organization = current_organization(request)
    params = request.GET.copy()
    if not params.get("range"):
        params["range"] = "7d"
    chosen = history.window(params)
    if request.GET.get("format") == "csv":
        return csv_response(
            _distance_csv(organization, chosen),
            f"distance-{chosen.as_params().get('from') or chosen.key}.csv",
        )
    rows = _distance_rows(organization, chosen.since, chosen.until)
    return render(
        request,
        "telemetry/distance.html",
        {
            "window": chosen,
            "ranges": [(key, label) for key, (label, _) in history.RANGES.items()],
            "rows": rows,
            "total_km": sum(r["distance_km"] or 0 for r in rows),
            "csv_query": urlencode({**chosen.as_params(), "format": "csv"}),
            "retention_days": settings.TELEMETRY_RETENTION_DAYS,
            "retention_start": history.retention_start(timezone.now()).date(),
        },
    )


def _distance_csv(organization: Any, chosen: history.Window):
    yield [
        "vin",
        "name",
        "licence_plate",
        "from",
        "to",
        "distance_km",
        "odometer_start_km",
        "odometer_end_km",
        "snapshots",
    ]
    since, until = exact_time(chosen.since), exact_time(chosen.until)
    for r in _distance_rows(organization, chosen.since, chosen.until):
        yield [
            r["vin"],
            r["label"],
            r["plate"],
            since,
            until,
            "" if r["distance_km"] is None else f"{r['distance_km']:.1f}",
            "" if r["first_km"] is None else f"{r['first_km']:.1f}",
            "" if r["last_km"] is None else f"{r['last_km']:.1f}",
            r["snapshots"],
        ]


@require_POST
def fleet_columns_save(request: OrganizationRequest) -> HttpResponse:
    """Remember which telemetry columns this member shows on the fleet list."""
    organization = current_organization(request)
    shown = set(request.POST.getlist("show"))
    fleet_columns.remember_hidden(
        request.user, organization, [key for key in fleet_columns.COLUMN_KEYS if key not in shown]
    )
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("vehicles:fleet")
    messages.success(request, "Columns saved; the fleet list shows them like this from now on.")
    return redirect(target)
