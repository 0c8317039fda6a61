"""What the API's GET endpoints read: the fleet with the fleet page's filters, a vehicle's
history and telemetry. Every query is scoped to the token's organization; a page of vehicles
costs the same few queries whatever its size (no query per row)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from api.errors import NO_SUCH_VEHICLE, ApiError
from clearance.models import ClearanceEvent
from clearance.selectors import FleetFilter, filter_fleet, parse_fleet_filter
from clearance.statuses import LABELS as STATUS_LABELS
from clearance.statuses import NOT_REQUESTED, OUTCOME_WORDS
from organizations.models import Organization
from telemetry.models import TelemetrySnapshot
from telemetry.selectors import is_stale
from vehicles.brands import BRAND_LABELS
from vehicles.models import Vehicle

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


# --- cursors: opaque to integrators, a position in a stable order to us ------------------------


def encode_cursor(*parts: object) -> str:
    text = ":".join(["v1", *(str(part) for part in parts)])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, count: int) -> list[str] | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        text = ""
    parts = text.split(":", count)
    if len(parts) != count + 1 or parts[0] != "v1":
        raise ApiError(
            "invalid_request",
            "This cursor is not one the API gave out; start again without a cursor.",
            details=[{"field": "cursor", "message": "Not a cursor of this list."}],
        )
    return parts[1:]


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(
            "invalid_request",
            f"limit must be between 1 and {MAX_LIMIT}.",
            details=[{"field": "limit", "message": f"Between 1 and {MAX_LIMIT}."}],
        )
    return limit


# --- vehicles ----------------------------------------------------------------------------------


def fleet_filter(
    *, status: str = "", brand: str = "", hm_application: str = "", q: str = ""
) -> FleetFilter:
    """The fleet page's filter from the API's parameters; a value the page would ignore is an
    error here (a program should learn it asked for something that does not exist)."""
    flt = parse_fleet_filter(
        {"status": status, "brand": brand, "credential": hm_application, "q": q}
    )
    problems = []
    if status and flt.status != status.strip():
        problems.append(("status", f"One of: {', '.join(STATUS_LABELS)}."))
    if brand and flt.brand != brand.strip():
        problems.append(("brand", "HM's brand slug, e.g. “volkswagen” or “mercedes-benz”."))
    if hm_application and not flt.credential:
        problems.append(("hm_application", "The id of one of your HM applications."))
    if problems:
        raise ApiError(
            "invalid_request",
            "Some filter values are not valid: " + "; ".join(f"{f}: {m}" for f, m in problems),
            details=[{"field": f, "message": m} for f, m in problems],
        )
    return flt


def filter_by_tag(queryset: QuerySet[Vehicle], tag: str) -> QuerySet[Vehicle]:
    """``vans`` (the vehicle has the tag) or ``depot=berlin`` (the tag has that value)."""
    key, has_value, value = tag.partition("=")
    key = key.strip()
    if not key:
        return queryset
    queryset = queryset.filter(tags__has_key=key)
    if has_value:
        queryset = queryset.alias(_tag_value=KeyTransform(key, "tags")).filter(
            _tag_value=value.strip()
        )
    return queryset


def with_latest_snapshot(queryset: QuerySet[Vehicle]) -> QuerySet[Vehicle]:
    newest = TelemetrySnapshot.objects.filter(vehicle=OuterRef("pk")).order_by(
        "-captured_at", "-pk"
    )
    return queryset.annotate(latest_snapshot_id=Subquery(newest.values("pk")[:1]))


def vehicle_page(
    organization: Organization,
    flt: FleetFilter,
    *,
    tag: str = "",
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page in the order vehicles were added (``id``), so vehicles added while an
    integrator pages through are neither skipped nor repeated: a new one comes after every
    existing one. Two queries: vehicles (with clearance and application) and their snapshots."""
    check_limit(limit)
    queryset = filter_fleet(organization, flt).order_by("pk")
    if tag:
        queryset = filter_by_tag(queryset, tag)
    position = decode_cursor(cursor, 1)
    if position is not None:
        try:
            after = int(position[0])
        except ValueError:
            after = 0
        queryset = queryset.filter(pk__gt=after)
    vehicles = list(with_latest_snapshot(queryset)[: limit + 1])
    more = len(vehicles) > limit
    vehicles = vehicles[:limit]
    items = serialize_vehicles(vehicles)
    return items, encode_cursor(vehicles[-1].pk) if more else None


def serialize_vehicles(vehicles: Sequence[Vehicle]) -> list[dict[str, Any]]:
    snapshot_ids = [getattr(v, "latest_snapshot_id", None) for v in vehicles]
    snapshots = {
        s.pk: s
        for s in TelemetrySnapshot.objects.filter(pk__in=[i for i in snapshot_ids if i]).only(
            "pk",
            "captured_at",
            "odometer_km",
            "battery_level",
            "fuel_level",
            "estimated_range_km",
            "latitude",
            "longitude",
        )
    }
    now = timezone.now()
    return [
        vehicle_dict(v, snapshots.get(getattr(v, "latest_snapshot_id", None) or 0), now=now)
        for v in vehicles
    ]


def get_vehicle(organization: Organization, vin: str) -> Vehicle:
    """The organization's vehicle with this VIN (case and spaces forgiven), or a 404."""
    vin = vin.strip().upper()
    vehicle = (
        with_latest_snapshot(filter_fleet(organization, FleetFilter())).filter(vin=vin).first()
    )
    if vehicle is None:
        raise ApiError("not_found", NO_SUCH_VEHICLE)
    return vehicle


def _position(latitude: float | None, longitude: float | None) -> dict[str, float] | None:
    if latitude is None or longitude is None:
        return None
    return {"latitude": latitude, "longitude": longitude}


def vehicle_dict(
    vehicle: Vehicle, snapshot: TelemetrySnapshot | None, *, now: datetime
) -> dict[str, Any]:
    try:
        clearance = vehicle.clearance
    except Vehicle.clearance.RelatedObjectDoesNotExist:
        clearance = None
    if clearance is None:
        clearance_out: dict[str, Any] = {
            "status": NOT_REQUESTED,
            "status_words": "No clearance was ever requested for this vehicle.",
            "since": None,
            "last_error": None,
            "last_error_at": None,
            "reason": None,
            "hm_application": None,
        }
    else:
        credential = clearance.credential
        clearance_out = {
            "status": clearance.status,
            "status_words": OUTCOME_WORDS.get(clearance.status, clearance.status),
            "since": clearance.status_changed_at,
            "last_error": clearance.last_error or None,
            "last_error_at": clearance.last_error_at,
            "reason": clearance.description or None,
            "hm_application": (
                {
                    "id": credential.public_id,
                    "name": credential.name,
                    "environment": credential.environment,
                }
                if credential
                else None
            ),
        }
    telemetry = None
    if snapshot is not None:
        telemetry = {
            "captured_at": snapshot.captured_at,
            "fresh": not is_stale(snapshot.captured_at, now),
            "odometer_km": snapshot.odometer_km,
            "battery_level": snapshot.battery_level,
            "fuel_level": snapshot.fuel_level,
            "estimated_range_km": snapshot.estimated_range_km,
            "position": _position(snapshot.latitude, snapshot.longitude),
        }
    tags = vehicle.tags if isinstance(vehicle.tags, dict) else {}
    return {
        "id": vehicle.public_id,
        "vin": vehicle.vin,
        "brand": vehicle.brand,
        "brand_name": BRAND_LABELS.get(vehicle.brand, vehicle.brand),
        "license_plate": vehicle.license_plate,
        "nickname": vehicle.nickname,
        "tags": {str(k): "" if v is None else str(v) for k, v in tags.items()},
        "odometer_km": vehicle.odometer_km,
        "added_at": vehicle.created_at,
        "last_seen_at": vehicle.last_seen_at,
        "clearance": clearance_out,
        "telemetry": telemetry,
    }


# --- history and telemetry ---------------------------------------------------------------------


def event_page(
    vehicle: Vehicle, *, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The clearance history, newest first (in the order the changes were applied here)."""
    check_limit(limit)
    queryset = (
        ClearanceEvent.objects.filter(clearance__vehicle=vehicle)
        .select_related("actor")
        .order_by("-id")
    )
    position = decode_cursor(cursor, 1)
    if position is not None:
        queryset = queryset.filter(id__lt=_int(position[0]))
    events = list(queryset[: limit + 1])
    more = len(events) > limit
    events = events[:limit]
    items = [
        {
            "from_status": event.from_status,
            "to_status": event.to_status,
            "at": event.at,
            "source": event.source,
            "by": event.actor.get_username() if event.actor else None,
            "detail": event.detail,
        }
        for event in events
    ]
    return items, encode_cursor(events[-1].pk) if more else None


def telemetry_page(
    vehicle: Vehicle, *, since: datetime | None, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Snapshots captured after ``since``, oldest first; the cursor continues after the last."""
    check_limit(limit)
    queryset = TelemetrySnapshot.objects.filter(vehicle=vehicle).order_by("captured_at", "id")
    position = decode_cursor(cursor, 2)
    if position is not None:
        try:
            at = datetime.fromisoformat(position[1])
        except ValueError as exc:
            raise ApiError("invalid_request", "This cursor is not valid.") from exc
        queryset = queryset.filter(captured_at__gte=at).exclude(
            captured_at=at, id__lte=_int(position[0])
        )
    elif since is not None:
        queryset = queryset.filter(captured_at__gt=since)
    snapshots = list(queryset[: limit + 1])
    more = len(snapshots) > limit
    snapshots = snapshots[:limit]
    items = [
        {
            "captured_at": s.captured_at,
            "received_at": s.received_at,
            "source": s.source,
            "odometer_km": s.odometer_km,
            "battery_level": s.battery_level,
            "fuel_level": s.fuel_level,
            "estimated_range_km": s.estimated_range_km,
            "charging_state": s.charging_state,
            "position": _position(s.latitude, s.longitude),
            "heading_deg": s.heading_deg,
            "speed_kmh": s.speed_kmh,
            "ignition": s.ignition,
            "doors_locked": s.doors_locked,
        }
        for s in snapshots
    ]
    last = snapshots[-1] if snapshots else None
    return items, encode_cursor(last.pk, last.captured_at.isoformat()) if more and last else None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0
