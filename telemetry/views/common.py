"""What the telemetry pages share: links to a vehicle, times and statuses in words, and whether
the reader may be told about operator settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from clearance import statuses
from organizations.http import OrganizationRequest
from vehicles.models import Vehicle


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


def exact_time(value: datetime | None) -> str:
    """The portal's date format (the same as the reltime filter's exact time), server-side."""
    if value is None:
        return ""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def clearance_label(status: str | None) -> str:
    if not status:
        return "No clearance"
    return statuses.label(status)
