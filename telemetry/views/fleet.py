"""Fleet-wide telemetry: the distance report (page and CSV) and the fleet list's telemetry
columns each member chooses."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from imports.exports import csv_response
from organizations.access import current_organization
from organizations.http import OrganizationRequest
from telemetry import fleet_columns, history, trips
from telemetry.views.common import exact_time


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
