"""Telemetry pages: the vehicle panel (htmx partial), Refresh, and the fleet map."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from clearance import statuses
from organizations.access import current_organization, get_object_for_user
from organizations.http import OrganizationRequest
from telemetry import pull, selectors, services
from telemetry.charts import Series, line_chart
from vehicles.models import Vehicle

PANEL_TEMPLATE = "telemetry/vehicle_telemetry.html"
# While a refresh is in flight the panel polls quickly; otherwise slowly, so streamed data shows.
FAST_POLL_SECONDS = 2
SLOW_POLL_SECONDS = 30
# How long the answer to a Refresh stays on the panel ("Refreshed 2 minutes ago: ...").
ANSWER_SHOWN_FOR = timedelta(minutes=10)


def _vehicle(request: OrganizationRequest, public_id: Any) -> Vehicle:
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
    track = selectors.track(vehicle)
    return {
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
        "charts": _charts(selectors.history(vehicle)),
        "track": track,
        "track_json": json.dumps(track),
        "tile_url": settings.MAP_TILE_URL,
        "tile_attribution": settings.MAP_TILE_ATTRIBUTION,
        "busy": busy,
        "poll_seconds": FAST_POLL_SECONDS if busy else SLOW_POLL_SECONDS,
        "stale_after_minutes": max(1, settings.TELEMETRY_STALE_AFTER_SECONDS // 60),
        "history_hours": settings.TELEMETRY_HISTORY_HOURS,
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


@require_GET
def fleet_map(request: OrganizationRequest) -> HttpResponse:
    """Last positions. By default only vehicles whose data access is approved (?show=all: all)."""
    organization = current_organization(request)
    show_all = request.GET.get("show") == "all"
    # Vehicles annotated with their clearance status and last position (see the selector).
    positioned: list[Any] = list(selectors.fleet_positions(organization))
    approved = [v for v in positioned if statuses.data_flows(v.clearance_status)]
    vehicles = positioned if show_all else approved
    rows = []
    for v in vehicles:
        rows.append(
            {
                "vehicle": v,
                "url": vehicle_detail_url(v),
                "label": v.nickname or v.license_plate or v.vin,
                "status": v.clearance_status or "",
                "status_label": clearance_label(v.clearance_status),
                "seen": exact_time(v.last_position_at),
            }
        )
    points = [
        {
            "lat": r["vehicle"].last_latitude,
            "lon": r["vehicle"].last_longitude,
            "label": r["label"],
            "vin": r["vehicle"].vin,
            "status": r["status_label"],
            "approved": statuses.data_flows(r["status"]),
            "seen": r["seen"],
            "url": r["url"],
        }
        for r in rows
    ]
    total = Vehicle.objects.filter(organization=organization).count()
    return render(
        request,
        "telemetry/fleet_map.html",
        {
            "points": points,
            "points_json": json.dumps(points),
            "rows": rows,
            "show_all": show_all,
            "hidden_count": len(positioned) - len(approved),
            "without_position": total - len(positioned),
            "tile_url": settings.MAP_TILE_URL,
            "tile_attribution": settings.MAP_TILE_ATTRIBUTION,
            "operator_hints": shows_operator_hints(request),
        },
    )
