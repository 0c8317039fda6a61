"""Reads of the fleet: vehicles with their clearance, filtered, counted and planned.

``filter_fleet(organization, params)`` is the single place that turns URL parameters (status,
brand, credential, text, sort) into a queryset. The overview, the bulk actions on "everything
matching the filter" and the CSV export all call it, so what a manager sees is what they act on.
``bulk_plan`` counts what a bulk action would do with aggregates, never loading the vehicles.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.db.models import Case, Count, F, Q, QuerySet, TextField, When
from django.db.models.functions import Cast
from django.utils import timezone

from clearance import state
from clearance.fields import encrypted_field_names
from clearance.hm import CANCELLATION_BRANDS
from clearance.models import ClearanceEvent, Credential
from clearance.wording import CANCEL_MIN_AGE, NOT_REQUESTED, STATUS_LABELS, STATUS_ORDER
from organizations.models import Organization
from vehicles import geo
from vehicles.brands import BRAND_LABELS
from vehicles.models import Vehicle

# URL sort key -> ORDER BY columns (the VIN breaks ties so pages are stable).
SORTS: dict[str, tuple[str, ...]] = {
    "vin": ("vin",),
    "brand": ("brand", "vin"),
    "plate": ("license_plate", "vin"),
    "nickname": ("nickname", "vin"),
    "status": ("clearance__status", "vin"),
    "changed": ("clearance__status_changed_at", "vin"),
    "seen": ("last_seen_at", "vin"),
    "added": ("created_at", "vin"),
    # Telemetry columns (the vehicle's newest values, LatestTelemetry: one join, no subquery).
    "energy": ("latest_telemetry__energy_level", "vin"),
    "range": ("latest_telemetry__estimated_range_km", "vin"),
    "odometer": ("latest_telemetry__odometer_km", "vin"),
    "position": ("latest_telemetry__position_at", "vin"),
}
DEFAULT_SORT = "vin"
# The parameters that make up "the current filter" (kept in URLs, forms and exports).
FILTER_PARAMS: tuple[str, ...] = (
    "status",
    "brand",
    "credential",
    "q",
    "sort",
    "energy_below",
    "silent_hours",
    "place",
)
# Bounds of the telemetry filters ("battery/fuel below X %", "silent for more than N hours").
SILENT_HOURS_MAX = 24 * 366


@dataclass(frozen=True)
class FleetFilter:
    status: str = ""
    brand: str = ""
    credential: str = ""
    q: str = ""
    sort: str = DEFAULT_SORT
    descending: bool = False
    energy_below: int | None = None  # %, 1-100
    silent_hours: int | None = None
    place: str = ""  # a Place's public id

    @property
    def active(self) -> bool:
        return bool(
            self.status
            or self.brand
            or self.credential
            or self.q
            or self.energy_below is not None
            or self.silent_hours is not None
            or self.place
        )

    @property
    def sort_param(self) -> str:
        return f"-{self.sort}" if self.descending else self.sort

    def as_params(self) -> dict[str, str]:
        """Only the non-default values, for building URLs."""
        params = {
            "status": self.status,
            "brand": self.brand,
            "credential": self.credential,
            "q": self.q,
            "sort": self.sort_param if self.sort_param != DEFAULT_SORT else "",
            "energy_below": "" if self.energy_below is None else str(self.energy_below),
            "silent_hours": "" if self.silent_hours is None else str(self.silent_hours),
            "place": self.place,
        }
        return {key: value for key, value in params.items() if value}


def parse_fleet_filter(params: Mapping[str, str]) -> FleetFilter:
    """Read filter values from URL parameters; unknown or malformed values are ignored."""
    status = (params.get("status") or "").strip()
    if status not in STATUS_LABELS:
        status = ""
    brand = (params.get("brand") or "").strip()
    if brand not in BRAND_LABELS:
        brand = ""
    credential = (params.get("credential") or "").strip()
    try:
        credential = str(uuid.UUID(credential)) if credential else ""
    except ValueError:
        credential = ""
    q = (params.get("q") or "").strip()[:100]
    sort = (params.get("sort") or "").strip()
    descending = sort.startswith("-")
    sort = sort.lstrip("-")
    if sort not in SORTS:
        sort, descending = DEFAULT_SORT, False
    place = (params.get("place") or "").strip()
    try:
        place = str(uuid.UUID(place)) if place else ""
    except ValueError:
        place = ""
    return FleetFilter(
        status=status,
        brand=brand,
        credential=credential,
        q=q,
        sort=sort,
        descending=descending,
        energy_below=_whole(params.get("energy_below"), 1, 100),
        silent_hours=_whole(params.get("silent_hours"), 1, SILENT_HOURS_MAX),
        place=place,
    )


def _whole(raw: str | None, low: int, high: int) -> int | None:
    """A whole number within [low, high] from a URL parameter, else None (ignored)."""
    try:
        value = int((raw or "").strip())
    except ValueError:
        return None
    return value if low <= value <= high else None


def vehicles_with_clearance() -> QuerySet[Vehicle]:
    """Vehicles with their clearance and its credential in the same query, minus the credential's
    encrypted secrets: vehicle pages show only its name and environment, and a secret no key can
    decrypt must not break them."""
    return Vehicle.objects.select_related("clearance", "clearance__credential").defer(
        *encrypted_field_names(Credential, through="clearance__credential")
    )


def filter_fleet(
    organization: Organization, params: Mapping[str, str] | FleetFilter
) -> QuerySet[Vehicle]:
    """The organization's vehicles matching `params` (a QueryDict, dict or FleetFilter), sorted.

    Clearance and credential come along in the same query (no per-row queries).
    """
    flt = params if isinstance(params, FleetFilter) else parse_fleet_filter(params)
    queryset = vehicles_with_clearance().filter(organization=organization)
    if flt.status == NOT_REQUESTED:
        queryset = queryset.filter(clearance__isnull=True)
    elif flt.status:
        queryset = queryset.filter(clearance__status=flt.status)
    if flt.brand:
        queryset = queryset.filter(brand=flt.brand)
    if flt.credential:
        queryset = queryset.filter(clearance__credential__public_id=flt.credential)
    if flt.q:
        queryset = queryset.annotate(tags_text=Cast("tags", TextField())).filter(
            Q(vin__icontains=flt.q)
            | Q(license_plate__icontains=flt.q)
            | Q(nickname__icontains=flt.q)
            | Q(tags_text__icontains=flt.q)  # tag names and values, e.g. "berlin"
        )
    queryset = _telemetry_filters(queryset, organization, flt)
    columns = SORTS[flt.sort]
    first: Any = F(columns[0])
    if columns[0].startswith("latest_telemetry__"):
        # Only approved vehicles show telemetry; the others sort with those without data.
        first = Case(When(clearance__status=state.S.APPROVED, then=first), default=None)
    # Vehicles without the value (no telemetry yet) last, either way, on every database.
    ordering: list[Any] = [
        first.desc(nulls_last=True) if flt.descending else first.asc(nulls_last=True),
        *columns[1:],
    ]
    return queryset.order_by(*ordering)


def _telemetry_filters(
    queryset: QuerySet[Vehicle], organization: Organization, flt: FleetFilter
) -> QuerySet[Vehicle]:
    """Battery/fuel below X %, silent for more than N hours, inside a place: on the vehicle's
    newest values (LatestTelemetry), approved vehicles only."""
    if flt.energy_below is None and flt.silent_hours is None and not flt.place:
        return queryset
    queryset = queryset.filter(clearance__status=state.S.APPROVED)
    if flt.energy_below is not None:
        queryset = queryset.filter(latest_telemetry__energy_level__lt=flt.energy_below / 100)
    if flt.silent_hours is not None:
        cutoff = timezone.now() - timedelta(hours=flt.silent_hours)
        queryset = queryset.filter(Q(last_seen_at__lt=cutoff) | Q(last_seen_at__isnull=True))
    if flt.place:
        # Places are telemetry's (a layer above): looked up by name, never imported.
        place_model = apps.get_model("telemetry", "Place")
        circle = place_model.objects.filter(organization=organization, public_id=flt.place).first()
        if circle is None:
            return queryset.none()
        queryset = queryset.filter(
            geo.inside_q(circle, "latest_telemetry__latitude", "latest_telemetry__longitude")
        )
    return queryset


def fleet_status_counts(organization: Organization) -> dict[str, int]:
    """Vehicles per clearance status in ONE aggregate query (plus `total` and `in_flight`)."""
    aggregates = {
        status: Count("id", filter=Q(clearance__status=status)) for status in STATUS_ORDER
    }
    aggregates[NOT_REQUESTED] = Count("id", filter=Q(clearance__isnull=True))
    counts = Vehicle.objects.filter(organization=organization).aggregate(
        total=Count("id"), **aggregates
    )
    known = sum(counts[status] for status in (*STATUS_ORDER, NOT_REQUESTED))
    # Raw statuses HM may send that we do not know yet are counted, never hidden.
    counts["other"] = counts["total"] - known
    counts["in_flight"] = sum(
        counts[status] for status in STATUS_ORDER if status not in state.TERMINAL
    )
    return counts


def vehicle_events(vehicle: Vehicle) -> QuerySet[ClearanceEvent]:
    """The clearance timeline, newest first, with who caused each change (one query).

    Ordered as the changes were applied here (append-only ids), not by `at`: HM's clock and ours
    may disagree, and late or reordered news is never recorded as an event anyway.
    """
    return (
        ClearanceEvent.objects.filter(clearance__vehicle=vehicle)
        .select_related("actor")
        .order_by("-id")
    )


def credentials_for(organization: Organization) -> QuerySet[Credential]:
    """The organization's HM applications by name, for pickers and filters: names only, the
    secrets stay encrypted in the database (one no key can decrypt cannot break a page)."""
    return (
        Credential.objects.filter(organization=organization)
        .defer(*encrypted_field_names(Credential))
        .order_by("name")
    )


BULK_SAMPLE_SIZE = 20


@dataclass(frozen=True)
class BulkPlan:
    """What a bulk action would do to a set of vehicles, counted in one aggregate query."""

    action: str  # "request" or "defleet"
    total: int
    will: int  # vehicles the action applies to; the others are skipped
    pending: int = 0  # defleet: pending requests to withdraw (the others are revoked)
    refusals_expected: int = 0  # defleet: pending ones HM will most likely refuse to withdraw

    @property
    def skipped(self) -> int:
        return self.total - self.will

    @property
    def effects(self) -> list[str]:
        """What will happen, in words, one line per kind of change."""
        if self.action != "defleet":
            if not self.will:
                return []
            return [f"{self.will} vehicle(s) are sent to High Mobility for clearance"]
        effects = []
        if revoke := self.will - self.pending:
            effects.append(f"{revoke} approved vehicle(s) lose data access (revoking → revoked)")
        if self.pending:
            effects.append(
                f"{self.pending} pending request(s) are withdrawn (canceling → canceled) "
                "where the carmaker allows it"
            )
        if self.refusals_expected:
            effects.append(
                f"{self.refusals_expected} of these pending request(s) will most likely be "
                "refused (the carmaker does not allow it, or the request is less than a day "
                "old): they stay Pending, with High Mobility's reason on their row"
            )
        return effects


def bulk_plan(vehicles: QuerySet[Vehicle], action: str, *, now: datetime | None = None) -> BulkPlan:
    """Count what ``action`` would do to ``vehicles`` (any size) without loading them."""
    now = now or timezone.now()
    pending = Q(clearance__status=state.S.PENDING)
    if action == "defleet":
        applies = Q(clearance__status__in=state.DEFLEETABLE)
    else:  # queued ones are on their way already
        applies = Q(clearance__isnull=True) | Q(clearance__status__in=state.REONBOARDABLE)
    refused = pending & (
        ~Q(brand__in=CANCELLATION_BRANDS) | Q(clearance__requested_at__gt=now - CANCEL_MIN_AGE)
    )
    counts = vehicles.order_by().aggregate(
        total=Count("id"),
        will=Count("id", filter=applies),
        pending=Count("id", filter=pending),
        refused=Count("id", filter=refused),
    )
    if action != "defleet":
        return BulkPlan(action, counts["total"], counts["will"])
    return BulkPlan(
        action,
        counts["total"],
        counts["will"],
        pending=counts["pending"],
        refusals_expected=counts["refused"],
    )
