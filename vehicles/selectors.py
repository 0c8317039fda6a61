"""Reads for the fleet pages: one filtering function shared by the overview, bulk actions and CSV export.

`filter_fleet(organization, params)` is the single place that turns URL parameters (status, brand,
credential, text, sort) into a queryset. The overview, "apply to everything matching the filter"
bulk actions and the CSV export all call it, so what a manager sees is what they act on.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from clearance.fields import encrypted_field_names
from clearance.hm import CANCELLATION_BRANDS
from clearance.models import ClearanceStatus, Credential
from organizations.models import Organization
from vehicles.brands import BRAND_LABELS
from vehicles.models import Vehicle

# Shown in this order in the counters and the status filter.
STATUS_ORDER: tuple[str, ...] = (
    ClearanceStatus.QUEUED,
    ClearanceStatus.PENDING,
    ClearanceStatus.APPROVED,
    ClearanceStatus.REJECTED,
    ClearanceStatus.REVOKING,
    ClearanceStatus.REVOKED,
    ClearanceStatus.CANCELING,
    ClearanceStatus.CANCELED,
    ClearanceStatus.ERROR,
)
# A vehicle without a clearance row (e.g. imported but never sent).
NOT_REQUESTED = "none"
STATUS_LABELS: dict[str, str] = {
    **{value: label for value, label in ClearanceStatus.choices},
    NOT_REQUESTED: "Not requested",
}
# Terminal for polling (DESIGN.md §4): nothing changes without someone acting.
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {
        ClearanceStatus.APPROVED,
        ClearanceStatus.REJECTED,
        ClearanceStatus.REVOKED,
        ClearanceStatus.CANCELED,
        ClearanceStatus.ERROR,
    }
)
# Statuses from which a vehicle may be sent again (re-onboard).
REONBOARD_STATUSES: frozenset[str] = frozenset(
    {
        ClearanceStatus.REJECTED,
        ClearanceStatus.REVOKED,
        ClearanceStatus.CANCELED,
        ClearanceStatus.ERROR,
    }
)
# Statuses in which HM can still be asked to remove the vehicle.
DEFLEETABLE_STATUSES: frozenset[str] = frozenset(
    {ClearanceStatus.APPROVED, ClearanceStatus.PENDING}
)

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
}
DEFAULT_SORT = "vin"
# The parameters that make up "the current filter" (kept in URLs, forms and exports).
FILTER_PARAMS: tuple[str, ...] = ("status", "brand", "credential", "q", "sort")


def is_terminal(status: str | None) -> bool:
    """True when polling can stop; a vehicle without clearance is terminal too."""
    return status is None or status in TERMINAL_STATUSES or status not in STATUS_LABELS


@dataclass(frozen=True)
class FleetFilter:
    status: str = ""
    brand: str = ""
    credential: str = ""
    q: str = ""
    sort: str = DEFAULT_SORT
    descending: bool = False

    @property
    def active(self) -> bool:
        return bool(self.status or self.brand or self.credential or self.q)

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
    return FleetFilter(
        status=status, brand=brand, credential=credential, q=q, sort=sort, descending=descending
    )


# What is said after an HM application's name: (word in the name, note when the name already
# contains that word, note otherwise). A credential called "Simulator" is "Simulator (offline
# stand-in)", not "Simulator (Simulator (offline stand-in))".
ENVIRONMENT_NOTES: dict[str, tuple[str, str, str]] = {
    Credential.Environment.PRODUCTION: ("production", "", "Production"),
    Credential.Environment.SANDBOX: ("sandbox", "", "Sandbox"),
    Credential.Environment.SIMULATOR: (
        "simulator",
        "offline stand-in",
        "Simulator, offline stand-in",
    ),
}


def credential_label(name: str, environment: str) -> str:
    """ "Main app (Production)", "Simulator (offline stand-in)", "Sandbox": the environment is
    said once, also when the application's name already says it."""
    word, named_note, note = ENVIRONMENT_NOTES.get(environment, ("", "", environment))
    if word and word in name.lower():
        note = named_note
    return f"{name} ({note})" if note else name


def vehicles_with_clearance() -> QuerySet:
    """Vehicles with their clearance and its credential in the same query, minus the credential's
    encrypted secrets: vehicle pages show only its name and environment, and a secret no key can
    decrypt must not break them."""
    return Vehicle.objects.select_related("clearance", "clearance__credential").defer(
        *encrypted_field_names(Credential, through="clearance__credential")
    )


def filter_fleet(organization: Organization, params: Mapping[str, str] | FleetFilter) -> QuerySet:
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
    columns = SORTS[flt.sort]
    ordering = [f"-{columns[0]}" if flt.descending else columns[0], *columns[1:]]
    return queryset.order_by(*ordering)


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
        counts[status] for status in STATUS_ORDER if status not in TERMINAL_STATUSES
    )
    return counts


# Plain-words explanation and next step for each status (vehicle detail page).
STATUS_HELP: dict[str, tuple[str, str]] = {
    ClearanceStatus.QUEUED: (
        "Saved in FleetPortal and about to be sent to High Mobility.",
        "Nothing to do: it is sent within a few seconds. If it stays queued for minutes, check "
        "that the background worker is running.",
    ),
    ClearanceStatus.PENDING: (
        "High Mobility has the request and is waiting for the carmaker to approve it.",
        "Wait. Some carmakers take days (the owner may have to confirm in the brand's app); "
        "pending for a few days is normal.",
    ),
    ClearanceStatus.APPROVED: (
        "The carmaker approved data access: telemetry can be read for this vehicle.",
        "Nothing to do. Defleet it when it leaves your fleet.",
    ),
    ClearanceStatus.REJECTED: (
        "The carmaker refused data access.",
        "Check the reason below, the owner's consent and the odometer (control measure), "
        "then re-onboard the vehicle.",
    ),
    ClearanceStatus.REVOKING: (
        "Data access is being removed at High Mobility.",
        "Nothing to do: it becomes revoked on its own.",
    ),
    ClearanceStatus.REVOKED: (
        "Data access was removed; no more telemetry arrives for this vehicle.",
        "Re-onboard it if it comes back into your fleet.",
    ),
    ClearanceStatus.CANCELING: (
        "The pending request is being withdrawn at High Mobility.",
        "Nothing to do: it becomes canceled on its own.",
    ),
    ClearanceStatus.CANCELED: (
        "The request was withdrawn before the carmaker answered.",
        "Re-onboard it if you still want data from this vehicle.",
    ),
    ClearanceStatus.ERROR: (
        "Sending the request failed for good.",
        "Read the error below (often the VIN or brand is wrong, or the credential lacks "
        "permissions), fix it, then re-onboard.",
    ),
    NOT_REQUESTED: (
        "No clearance has been requested for this vehicle yet.",
        "Request clearance to start receiving data.",
    ),
}


# Queued, and the last attempt to send it failed (HM unreachable, refused the application...).
QUEUED_RETRYING_HELP = (
    "Saved in FleetPortal; sending it to High Mobility has not worked yet.",
    "Nothing to do for now: FleetPortal tries again by itself (the worker retries with growing "
    "pauses, then the periodic sync sends it again). If the problem below names the credential, "
    "an owner has to fix it on the Credentials page first.",
)


def status_help(status: str | None, *, last_error: str = "") -> tuple[str, str]:
    """(what the status means, what to do) in plain words."""
    if status == ClearanceStatus.QUEUED and last_error:
        return QUEUED_RETRYING_HELP
    if status is None:
        return STATUS_HELP[NOT_REQUESTED]
    return STATUS_HELP.get(
        status,
        (
            f"High Mobility reported a status FleetPortal does not know (“{status}”).",
            "Nothing to do now; the next sync with High Mobility will update it.",
        ),
    )


# HM withdraws a pending request only for some carmakers, and only a day after it was sent
# (PROTOCOL.md §2.4; clearance.services.explain_delete_refusal words its refusals).
CANCEL_MIN_AGE = timedelta(days=1)
CANCELLATION_BRAND_NAMES = ", ".join(BRAND_LABELS.get(b, b) for b in CANCELLATION_BRANDS)
CANCEL_REFUSAL_NOTE = (
    "Some carmakers do not let High Mobility withdraw a pending request: it is allowed only "
    f"for {CANCELLATION_BRAND_NAMES}, and only one day after the request was sent. When High "
    "Mobility refuses, nothing changes: the vehicle stays Pending, the reason is shown on its "
    "row and its page, and you can defleet it once it is approved (or the request ends by "
    "itself)."
)


def cancel_refusal_expected(brand: str, requested_at: datetime | None, now=None) -> str:
    """Why HM will most likely refuse to withdraw this pending request, in words; "" when it
    should not refuse."""
    if brand not in CANCELLATION_BRANDS:
        label = BRAND_LABELS.get(brand, brand)
        return (
            f"{label} is not among the carmakers that allow withdrawing a pending request, so "
            "High Mobility will most likely refuse."
        )
    now = now or timezone.now()
    if requested_at is not None and now < requested_at + CANCEL_MIN_AGE:
        ready = timezone.localtime(requested_at + CANCEL_MIN_AGE)
        return (
            "This request was sent less than a day ago, so High Mobility will refuse to "
            f"withdraw it before {ready:%d %b %Y %H:%M}."
        )
    return ""


def last_heard_from_hm(clearance) -> datetime | None:
    """When High Mobility last told us something new about this clearance: a sync that changed
    it, a webhook, or its answer to our request or defleet (our clock). None while it has not.

    ``status_known_at`` is when we learnt the current status; for ``queued`` that is our own
    doing (saved, not sent), so it does not count.
    """
    if clearance is None:
        return None
    times = [clearance.last_synced_at, clearance.requested_at]
    if clearance.status != ClearanceStatus.QUEUED:
        times.append(clearance.status_known_at)
    return max((at for at in times if at is not None), default=None)


def vehicle_events(vehicle: Vehicle) -> QuerySet:
    """The clearance timeline, newest first, with who caused each change (one query).

    Ordered as the changes were applied here (append-only ids), not by `at`: HM's clock and ours
    may disagree, and late or reordered news is never recorded as an event anyway.
    """
    from clearance.models import ClearanceEvent

    return (
        ClearanceEvent.objects.filter(clearance__vehicle=vehicle)
        .select_related("actor")
        .order_by("-id")
    )
