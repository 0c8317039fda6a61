"""What the fleet pages share: a vehicle made ready for the templates, action summaries in
words, and the short "watch" after an action during which rows keep polling."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse

from clearance import statuses
from clearance.models import Clearance
from clearance.selectors import vehicles_with_clearance
from clearance.services import fleet_actions
from clearance.statuses import NOT_REQUESTED
from organizations.access import get_object_for_user, require_role
from organizations.http import OrganizationRequest
from organizations.models import Role
from vehicles.models import Vehicle

PAGE_SIZE = 50
WATCH_SECONDS = 60
WATCH_SESSION_KEY = "fleet_watch_until"
ROW_POLL_SECONDS = 3  # the vehicle page's clearance card
FLEET_TEMPLATE = "vehicles/fleet.html"
DETAIL_TEMPLATE = "vehicles/vehicle_detail.html"


def url_or_none(name: str, *args: Any) -> str | None:
    """A URL another part of the portal provides, or None while it does not exist yet."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def _clearance(vehicle: Vehicle) -> Clearance | None:
    try:
        return vehicle.clearance
    except Vehicle.clearance.RelatedObjectDoesNotExist:
        return None


@dataclass
class FleetRow:
    """A vehicle as the fleet templates show it: its own fields (read through to the vehicle)
    and what its clearance means, worked out once so a template never triggers a query."""

    vehicle: Vehicle
    cl: Clearance | None
    status: str
    status_label: str
    is_terminal: bool
    polls: bool
    can_defleet: bool
    can_reonboard: bool
    data_flows: bool = False  # HM shares the vehicle's data (else "last seen" is history)
    version: str = ""  # changes whenever what the fleet row shows changes (the fleet poll)
    selected: bool = False  # ticked on the page that asks (the fleet poll keeps the tick)

    def __getattr__(self, name: str) -> Any:
        if name == "vehicle":  # not set yet (copying): no endless recursion
            raise AttributeError(name)
        return getattr(self.vehicle, name)


def decorate(vehicle: Vehicle, *, watching: bool = False, selected: bool = False) -> FleetRow:
    """The vehicle with what the templates need."""
    clearance = _clearance(vehicle)
    status = clearance.status if clearance else None
    final = statuses.is_final(status)
    return FleetRow(
        vehicle=vehicle,
        cl=clearance,
        status=status or NOT_REQUESTED,
        status_label=statuses.label(status),
        is_terminal=final,
        # Live regions poll while not final, and for a while after an action (see watch).
        polls=not final or watching,
        can_defleet=statuses.can_defleet(status),
        can_reonboard=statuses.can_reonboard(status),
        data_flows=statuses.data_flows(status),
        version=row_version(vehicle, clearance),
        selected=selected,
    )


def row_version(vehicle: Vehicle, clearance: Clearance | None) -> str:
    """A short fingerprint of everything a fleet row shows: the fleet page's one poll sends the
    versions of the rows on screen and gets back only the rows whose version moved."""
    parts = (
        vehicle.updated_at,
        vehicle.last_seen_at,
        clearance.status if clearance else None,
        clearance.status_changed_at if clearance else None,
        clearance.last_error if clearance else None,
        clearance.last_error_at if clearance else None,
        clearance.credential_id if clearance else None,
    )
    return format(zlib.crc32(repr(parts).encode()), "08x")


def with_messages(request: OrganizationRequest, response: HttpResponse) -> HttpResponse:
    """Append pending messages as an out-of-band toast swap (htmx responses only)."""
    toasts = render_to_string("vehicles/_toasts_oob.html", request=request)
    response.write(toasts)
    return response


def can_manage(request: OrganizationRequest) -> bool:
    membership = getattr(request, "membership", None)
    return bool(membership and membership.has_role(Role.MANAGER))


def vehicle_for(request: OrganizationRequest, public_id: Any, *, write: bool = False) -> FleetRow:
    """The current organization's vehicle (404 otherwise); `write` also needs the manager role."""
    vehicle = get_object_for_user(
        request,
        vehicles_with_clearance(),
        public_id=public_id,
    )
    if write:
        require_role(request, Role.MANAGER)
    return decorate(vehicle, watching=watching(request))


def plural(n: int, word: str = "vehicle") -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def report(request: OrganizationRequest, result: fleet_actions.ActionResult, *, verb: str) -> None:
    """Turn an action summary into toasts a fleet manager understands."""
    if verb == "defleet":
        if result.background:
            done = f"Defleeting {plural(result.done)} in the background"
        else:
            done = f"Defleet sent for {plural(result.done)}"
    else:
        done = f"Clearance requested for {plural(result.done)}"
    parts = [done] if result.done or not (result.skipped or result.failed) else []
    if result.skipped:
        parts.append(f"{result.skipped} skipped ({result.skipped_reason})")
    if result.failed:
        parts.append(f"{result.failed} not done")
    if parts:
        text = "; ".join(parts) + "."
        if result.done:
            text += " Statuses update on this page as High Mobility answers."
        level = messages.success if result.done and not result.failed else messages.warning
        level(request, text[0].upper() + text[1:])
    for problem in result.problems[:5]:
        messages.error(request, problem)
    for notice in result.notices[:5]:
        messages.warning(request, notice)
    if result.done:
        watch(request)


def watch(request: OrganizationRequest) -> None:
    """Keep polling for a while after an action, even rows that look terminal (a background
    defleet turns an approved vehicle into revoking a moment later)."""
    request.session[WATCH_SESSION_KEY] = time.time() + WATCH_SECONDS


def watching(request: OrganizationRequest) -> bool:
    return request.session.get(WATCH_SESSION_KEY, 0) > time.time()
