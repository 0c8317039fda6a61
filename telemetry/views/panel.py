"""The vehicle's telemetry panel (an htmx partial of the vehicle page, or a page of its own):
latest values, charts, track and trips over a chosen range, and its Refresh."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from organizations.access import get_object_for_user
from organizations.http import OrganizationRequest
from telemetry import history, pull, selectors, services, trips
from telemetry.charts import Series, line_chart
from telemetry.views.common import shows_operator_hints, vehicle_detail_url
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
