"""``/api/v1/``: the endpoints, their authentication and the one error shape.

Every endpoint needs ``Authorization: Bearer <token>``; everything is scoped to the token's
organization (another organization's vehicle is a 404, as for a person); writes need a token
with the write scope (403 otherwise). See docs/api.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from ninja import Header, NinjaAPI, Query
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer

from api import feed, ratelimit, reads, tokens, writes
from api.errors import READ_ONLY, UNAUTHENTICATED, ApiError
from api.models import ApiToken
from api.schemas import (
    MAX_BATCH,
    ChangePage,
    DefleetIn,
    DefleetOut,
    ErrorOut,
    EventPage,
    TelemetryPage,
    VehicleBatchIn,
    VehicleBatchOut,
    VehicleOut,
    VehiclePage,
    dump,
)
from audit import context as audit_context


class BearerToken(HttpBearer):
    openapi_description = "An API token, created by an owner on the portal's API tokens page."

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        found = tokens.authenticate(token)
        if found is not None:
            # Reset with the rest of the request by audit's middleware.
            audit_context.set_actor(tokens.actor(found, audit_context.current().ip))
            ratelimit.check(found)
        return found


api = NinjaAPI(
    title="FleetPortal API",
    version="1",
    description=(
        "The fleet, its clearances and telemetry, onboarding and defleet, and one change feed, "
        "for the systems of a fleet operator. Errors always have the shape "
        '{"error": {"code", "message", "details"}}. Guide: docs/api.md.'
    ),
    urls_namespace="api-v1",
    auth=BearerToken(),
    docs_url=None,
    openapi_url="/openapi.json",
)

READ_ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 429: ErrorOut}
ONE_VEHICLE_ERRORS: dict[int, Any] = {**READ_ERRORS, 404: ErrorOut}
WRITE_ERRORS: dict[int, Any] = {**READ_ERRORS, 403: ErrorOut, 422: ErrorOut}


def _error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    response = api.create_response(request, exc.body(), status=exc.status)
    for name, value in exc.headers.items():
        response[name] = value
    return response


@api.exception_handler(ApiError)
def on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return _error(request, exc)


@api.exception_handler(AuthenticationError)
def on_unauthenticated(request: HttpRequest, exc: Exception) -> HttpResponse:
    response = _error(request, ApiError("unauthenticated", UNAUTHENTICATED))
    response["WWW-Authenticate"] = 'Bearer realm="FleetPortal API"'
    return response


@api.exception_handler(ValidationError)
def on_invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    details = []
    for problem in exc.errors:
        location = [str(part) for part in problem.get("loc", ()) if part not in ("body", "query")]
        field = ""
        for part in location:
            field += f"[{part}]" if part.isdigit() else (f".{part}" if field else part)
        details.append({"field": field, "message": str(problem.get("msg", "Invalid value."))})
    too_many = any(
        problem.get("type") == "too_long"
        and problem.get("loc", ())[-1:] in (("vehicles",), ("vins",))
        for problem in exc.errors
    )
    if too_many:
        error = ApiError(
            "too_many_items",
            f"At most {MAX_BATCH:,} items per request; send the rest in another request.",
            details=details,
        )
    else:
        error = ApiError(
            "invalid_request",
            "The request is not valid: "
            + "; ".join(f"{d['field']}: {d['message']}" for d in details),
            details=details,
        )
    return _error(request, error)


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Exception) -> HttpResponse:
    return _error(request, ApiError("not_found", "There is nothing at this address."))


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code = {401: "unauthenticated", 403: "insufficient_scope", 404: "not_found"}.get(
        exc.status_code, "invalid_request"
    )
    return _error(request, ApiError(code, str(exc)))


def _token(request: HttpRequest) -> ApiToken:
    token = request.auth  # type: ignore[attr-defined]
    assert isinstance(token, ApiToken)
    return token


def _writer(request: HttpRequest) -> ApiToken:
    token = _token(request)
    if not token.can_write:
        raise ApiError("insufficient_scope", READ_ONLY)
    return token


@api.get("/vehicles", response={200: VehiclePage, **READ_ERRORS}, tags=["vehicles"])
def list_vehicles(
    request: HttpRequest,
    status: str = "",
    brand: str = "",
    hm_application: str = "",
    tag: str = "",
    q: str = "",
    cursor: str | None = None,
    limit: int = reads.DEFAULT_LIMIT,
) -> Any:
    """The fleet, with the fleet page's filters, in the order vehicles were added.

    `status` (or `none`: never requested), `brand` (HM's slug), `hm_application` (its id),
    `tag` (`vans`, or `depot=berlin`), `q` (VIN, plate, nickname or tag text). Pass the answer's
    `next_cursor` as `cursor` for the next page; vehicles added meanwhile come at the end, none
    is skipped or repeated.
    """
    token = _token(request)
    flt = reads.fleet_filter(status=status, brand=brand, hm_application=hm_application, q=q)
    items, next_cursor = reads.vehicle_page(
        token.organization, flt, tag=tag, cursor=cursor, limit=limit
    )
    return {"items": items, "next_cursor": next_cursor}


@api.post("/vehicles", response={200: VehicleBatchOut, **WRITE_ERRORS}, tags=["vehicles"])
def add_vehicles(
    request: HttpRequest,
    response: HttpResponse,
    body: VehicleBatchIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
) -> Any:
    """Add up to 1,000 vehicles and request their clearance (write scope).

    Each item is checked by the rules of the add-vehicle form and the CSV import and answered
    on its own (`created` or `refused` with the reasons); the valid ones are saved even when
    others are refused. Send an `Idempotency-Key` to retry safely: a retry with the same key and
    body gets the first answer and adds nothing.
    """
    token = _writer(request)
    answer, replayed = writes.idempotent(
        token,
        idempotency_key,
        request.path,
        request.body,
        lambda: dump(
            VehicleBatchOut(
                **writes.add_vehicles(
                    token.organization,
                    [item.model_dump() for item in body.vehicles],
                    hm_application=body.hm_application,
                )
            )
        ),
    )
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return answer


@api.post("/vehicles/defleet", response={200: DefleetOut, **WRITE_ERRORS}, tags=["vehicles"])
def defleet_vehicles(
    request: HttpRequest,
    response: HttpResponse,
    body: DefleetIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
) -> Any:
    """Defleet up to 1,000 vehicles by VIN (write scope): approved ones are revoked, pending
    ones canceled, in the background; the others are refused in the words the vehicle page
    uses. Follow the result in `/changes`."""
    token = _writer(request)
    answer, replayed = writes.idempotent(
        token,
        idempotency_key,
        request.path,
        request.body,
        lambda: dump(DefleetOut(**writes.defleet_vins(token.organization, body.vins))),
    )
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return answer


@api.get("/vehicles/{vin}", response={200: VehicleOut, **ONE_VEHICLE_ERRORS}, tags=["vehicles"])
def get_vehicle(request: HttpRequest, vin: str) -> Any:
    """One vehicle of your fleet."""
    vehicle = reads.get_vehicle(_token(request).organization, vin)
    return reads.serialize_vehicles([vehicle])[0]


@api.get(
    "/vehicles/{vin}/events", response={200: EventPage, **ONE_VEHICLE_ERRORS}, tags=["vehicles"]
)
def vehicle_events(
    request: HttpRequest, vin: str, cursor: str | None = None, limit: int = reads.DEFAULT_LIMIT
) -> Any:
    """The vehicle's clearance history, newest first."""
    vehicle = reads.get_vehicle(_token(request).organization, vin)
    items, next_cursor = reads.event_page(vehicle, cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}


@api.get(
    "/vehicles/{vin}/telemetry",
    response={200: TelemetryPage, **ONE_VEHICLE_ERRORS},
    tags=["vehicles"],
)
def vehicle_telemetry(
    request: HttpRequest,
    vin: str,
    since: datetime | None = None,
    cursor: str | None = None,
    limit: int = reads.DEFAULT_LIMIT,
) -> Any:
    """Telemetry captured after `since` (ISO 8601), oldest first."""
    vehicle = reads.get_vehicle(_token(request).organization, vin)
    items, next_cursor = reads.telemetry_page(vehicle, since=since, cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}


@api.get("/changes", response={200: ChangePage, **READ_ERRORS}, tags=["changes"])
def changes(
    request: HttpRequest,
    cursor: str | None = None,
    limit: int = reads.DEFAULT_LIMIT,
    start: str = Query("beginning", description="Without a cursor: `beginning` or `now`."),
) -> Any:
    """Clearance changes and vehicles added or removed, in the order they were committed.

    Store `next_cursor` and ask with it next time: no change is ever missed or returned twice.
    Without a cursor the feed starts at the beginning (or, with `start=now`, after everything
    so far).
    """
    organization_id = _token(request).organization_id
    reads.check_limit(limit)
    try:
        after = feed.Position.decode(cursor)
    except feed.BadCursor:
        raise ApiError(
            "invalid_request",
            "This cursor is not one the API gave out; start again without a cursor.",
            details=[{"field": "cursor", "message": "Not a cursor of this feed."}],
        ) from None
    if not cursor and start == "now":
        after = feed.latest(organization_id)
    entries, position = feed.read(organization_id, after, limit)
    items = [
        {
            "kind": entry.kind,
            "vin": entry.vin,
            "from_status": entry.from_status or None,
            "to_status": entry.to_status or None,
            "at": entry.at,
            "source": entry.source or None,
            "detail": entry.detail,
        }
        for entry in entries
    ]
    return {"items": items, "next_cursor": position.encode(), "has_more": len(entries) == limit}
