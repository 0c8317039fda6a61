"""Telemetry pages: the vehicle panel (htmx partial), Refresh, and the fleet map."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from organizations.access import current_organization, get_object_for_user
from vehicles.models import Vehicle
from vehicles.telemetry import selectors, services
from vehicles.telemetry.charts import Series, line_chart

PANEL_TEMPLATE = "telemetry/vehicle_telemetry.html"
# While a refresh is in flight the panel polls quickly; otherwise slowly, so streamed data shows.
FAST_POLL_SECONDS = 2
SLOW_POLL_SECONDS = 30


def _vehicle(request: HttpRequest, public_id: Any) -> Vehicle:
    return get_object_for_user(
        request, Vehicle.objects.select_related("clearance"), public_id=public_id
    )


def vehicle_detail_url(vehicle: Vehicle) -> str:
    """The dashboard's vehicle page if it exists, else our standalone telemetry page."""
    for name in ("vehicles:detail", "vehicles:vehicle_detail"):
        try:
            return reverse(name, args=[vehicle.public_id])
        except NoReverseMatch:
            continue
    return reverse("telemetry:panel", args=[vehicle.public_id])


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


def _panel_context(request: HttpRequest, vehicle: Vehicle) -> dict[str, Any]:
    # Status first, data second: a pull that finishes in between then shows "done" only with
    # its data (the other order could show "Refreshed" above the old values and stop polling).
    status = services.get_pull_status(vehicle)
    snapshots = selectors.recent_snapshots(vehicle)
    # A scheduled pull waiting for its countdown is not "busy": the user did not ask for it.
    busy = services.pull_is_waiting(status, count_scheduled=False)
    clearance = getattr(vehicle, "clearance", None)
    track = selectors.track(vehicle)
    return {
        "vehicle": vehicle,
        "clearance_status": clearance.status if clearance else "",
        "fields": selectors.latest_fields(snapshots),
        "doors": selectors.latest_doors(snapshots),
        "latest": snapshots[0] if snapshots else None,
        "latest_at_receive_time": bool(
            snapshots and services.captured_at_is_receive_time(snapshots[0])
        ),
        "charts": _charts(selectors.history(vehicle)),
        "track": track,
        "track_json": json.dumps(track),
        "tile_url": settings.MAP_TILE_URL,
        "tile_attribution": settings.MAP_TILE_ATTRIBUTION,
        "pull_status": status,
        "busy": busy,
        "poll_seconds": FAST_POLL_SECONDS if busy else SLOW_POLL_SECONDS,
        "stale_after_minutes": max(1, settings.TELEMETRY_STALE_AFTER_SECONDS // 60),
        "history_hours": settings.TELEMETRY_HISTORY_HOURS,
        "detail_url": vehicle_detail_url(vehicle),
        # htmx requests come from the vehicle page, which has its own card and heading.
        "embedded": bool(request.htmx),
    }


@require_GET
def panel(request: HttpRequest, public_id: Any) -> HttpResponse:
    vehicle = _vehicle(request, public_id)
    context = _panel_context(request, vehicle)
    template = f"{PANEL_TEMPLATE}#panel" if request.htmx else PANEL_TEMPLATE
    return render(request, template, context)


@require_POST
def refresh(request: HttpRequest, public_id: Any) -> HttpResponse:
    """Queue a pull for this vehicle; the panel then polls until the result is in."""
    vehicle = _vehicle(request, public_id)
    services.request_refresh(vehicle)
    if not request.htmx:
        return redirect(vehicle_detail_url(vehicle))
    return render(request, f"{PANEL_TEMPLATE}#panel", _panel_context(request, vehicle))


@require_GET
def fleet_map(request: HttpRequest) -> HttpResponse:
    organization = current_organization(request)
    vehicles = list(selectors.fleet_positions(organization))
    points = [
        {
            "lat": v.last_latitude,
            "lon": v.last_longitude,
            "label": v.nickname or v.license_plate or v.vin,
            "vin": v.vin,
            "at": v.last_position_at.isoformat() if v.last_position_at else None,
            "url": vehicle_detail_url(v),
        }
        for v in vehicles
    ]
    total = Vehicle.objects.filter(organization=organization).count()
    return render(
        request,
        "telemetry/fleet_map.html",
        {
            "points": points,
            "points_json": json.dumps(points),
            "rows": [(v, p["url"]) for v, p in zip(vehicles, points, strict=True)],
            "without_position": total - len(points),
            "tile_url": settings.MAP_TILE_URL,
            "tile_attribution": settings.MAP_TILE_ATTRIBUTION,
        },
    )
