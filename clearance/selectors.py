"""Reads of the fleet: vehicles with their clearance, filtered, counted and planned.

``filter_fleet(organization, params)`` is the single place that turns URL parameters (status,
brand, credential, text, sort) into a queryset. The overview, the bulk actions on "everything
matching the filter" and the CSV export all call it, so what a manager sees is what they act on.
``bulk_plan`` counts what a bulk action would do with aggregates, never loading the vehicles.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Case, Count, F, Q, QuerySet, Sum, TextField, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.db.models.lookups import IExact
from django.utils import timezone

from clearance import statuses
from clearance.fields import encrypted_field_names
from clearance.models import ClearanceEvent, Credential, FleetStatusCount
from clearance.statuses import NOT_REQUESTED
from clearance.telemetry_pages import telemetry_page_ids
from organizations.models import Organization
from vehicles import geo
from vehicles.brands import BRAND_LABELS
from vehicles.models import Vehicle
from vehicles.validation import TAG_SEPARATORS

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
    "tag",
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
    tag: str = ""  # "depot=berlin" or a bare "vans"
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
            or self.tag
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
            "tag": self.tag,
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
    if status not in statuses.LABELS:
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
    tag = (params.get("tag") or "").strip()[:320]
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
        tag=tag,
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


def tag_match(text: str) -> Q:
    """Vehicles carrying the tag as it is displayed: "depot=berlin" (that key with that value,
    any case) or a bare "vans" (that key, any value). Several tags, comma-separated: all."""
    match = Q()
    for part in TAG_SEPARATORS.split(text):
        key, sep, value = (piece.strip() for piece in part.partition("="))
        if not key:
            continue
        if sep and value:
            # The key as one name ("a__b" is not a path), compared without regard to case.
            match &= Q(IExact(KeyTextTransform(key, "tags"), value))
        else:
            match &= Q(tags__has_key=key)
    return match


def text_match(q: str) -> Q:
    """The search box: a "key=value" word finds that tag (as tags are displayed); the rest of
    the text, as one phrase, is looked for in the VIN, plate, nickname and tag names and
    values ("van 1", "berlin", a bare tag "vans")."""
    words = q.split()
    match = Q()
    for word in words:
        if "=" in word.strip("="):
            match &= tag_match(word)
    phrase = " ".join(word for word in words if "=" not in word.strip("="))
    if phrase:
        match &= (
            Q(vin__icontains=phrase)
            | Q(license_plate__icontains=phrase)
            | Q(nickname__icontains=phrase)
            | Q(tags_text__icontains=phrase)
        )
    return match


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
    if flt.tag:
        queryset = queryset.filter(tag_match(flt.tag))
    if flt.q:
        queryset = queryset.annotate(tags_text=Cast("tags", TextField())).filter(text_match(flt.q))
    queryset = _telemetry_filters(queryset, organization, flt)
    columns = SORTS[flt.sort]
    first: Any = F(columns[0])
    if columns[0].startswith("latest_telemetry__"):
        # Only approved vehicles show telemetry; the others sort with those without data.
        first = Case(When(clearance__status__in=statuses.DATA_FLOWS, then=first), default=None)
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
    queryset = queryset.filter(clearance__status__in=statuses.DATA_FLOWS)
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


# Rows an organization's counts may pile up to before a read folds them into one per status.
COUNT_ROWS_BEFORE_FOLDING = 200


def fleet_status_counts(organization: Organization) -> dict[str, int]:
    """Vehicles per clearance status (plus `total`, `other` and `in_flight`) in one small query.

    The database keeps the counts as vehicles and clearances change (FleetStatusCount, kept by
    the triggers of migration clearance 0004), so this costs the same for 10 or 100,000
    vehicles. On PostgreSQL each changing statement adds rows of differences, folded into one
    row per status by every 64th statement, and here when there are more than
    COUNT_ROWS_BEFORE_FOLDING.
    """
    rows = list(
        FleetStatusCount.objects.filter(organization=organization)
        .values_list("status")
        .annotate(vehicles=Sum("vehicles"), rows=Count("id"))
        .order_by()
    )
    if sum(n_rows for _status, _vehicles, n_rows in rows) > COUNT_ROWS_BEFORE_FOLDING:
        fold_fleet_status_counts(organization)
    by_status = {status: int(vehicles) for status, vehicles, _rows in rows}
    counts = {status: by_status.get(status, 0) for status in statuses.ORDER}
    counts[NOT_REQUESTED] = by_status.get("", 0)
    counts["total"] = sum(by_status.values())
    known = sum(counts[status] for status in (*statuses.ORDER, NOT_REQUESTED))
    # Raw statuses HM may send that we do not know yet are counted, never hidden.
    counts["other"] = counts["total"] - known
    counts["in_flight"] = sum(counts[status] for status in statuses.IN_FLIGHT)
    return counts


def fold_fleet_status_counts(organization: Organization) -> None:
    """Replace an organization's rows of differences by one row per status (PostgreSQL).

    One statement (``clearance_fleet_counts_fold``, migration clearance 0004): the rows it
    deletes are exactly the rows it sums. Changes not committed yet are not among them and stay
    as they are; rows another transaction is folding are skipped, never waited for.
    """
    if connection.vendor != "postgresql":
        return  # SQLite's triggers keep one row per status already
    with connection.cursor() as cursor:
        cursor.execute("SELECT clearance_fleet_counts_fold(%s)", [organization.pk])


def fleet_count(flt: FleetFilter, counts: Mapping[str, int]) -> int | None:
    """How many vehicles `flt` matches, when the status counters already say so (no filter, or
    only a status); None when the rows must be counted."""
    if replace(flt, status="", sort=DEFAULT_SORT, descending=False) != FleetFilter():
        return None  # any other filter, including ones added later
    return counts[flt.status] if flt.status else counts["total"]


class FleetPaginator(Paginator[Vehicle]):
    """Django's paginator for the fleet, with every page as cheap as the first.

    * The number of vehicles comes from the status counters when they know it (``count``), so
      there is no second COUNT(*).
    * A page fetches the ids of its 50 vehicles first (a narrow scan of the sort index), then
      those vehicles with their clearance; the second half of the pages is read from the end
      in the reverse order, so the last page is the first page read backwards.
    """

    def __init__(
        self,
        object_list: QuerySet[Vehicle],
        per_page: int,
        count: int | None = None,
        *,
        sort: FleetFilter | None = None,
    ):
        super().__init__(object_list, per_page)
        self.queryset = object_list
        self.sort = sort
        if count is not None:
            self.__dict__["count"] = count  # cached_property: the counters' figure

    def page(self, number: Any) -> Page[Vehicle]:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = min(bottom + self.per_page, self.count)
        queryset = self.queryset
        ids: Any = queryset.values("pk")
        column = SORTS[self.sort.sort][0] if self.sort else ""
        if self.sort and column.startswith("latest_telemetry__"):
            # From the column's index, not a sort of every vehicle (clearance/telemetry_pages).
            ids = telemetry_page_ids(
                queryset,
                column,
                shown_for=statuses.DATA_FLOWS,
                descending=self.sort.descending,
                bottom=bottom,
                top=top,
            )
        elif bottom > self.count - top:  # nearer the end: read backwards
            ids = ids.reverse()[self.count - top : self.count - bottom]
        else:
            ids = ids[bottom:top]
        return Page(list(queryset.filter(pk__in=ids)), number, self)


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
    pending = Q(clearance__status=statuses.S.PENDING)
    if action == "defleet":
        applies = Q(clearance__status__in=statuses.DEFLEETABLE)
    else:  # queued ones are on their way already
        applies = Q(clearance__isnull=True) | Q(clearance__status__in=statuses.REONBOARDABLE)
    refused = statuses.cancel_refused_q(now)
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
