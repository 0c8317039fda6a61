"""HTTP face of the simulated HM API (thin: parse, call a service, answer in HM's shapes)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from untrusted import UntrustedJsonError, parse_json

from . import auth, services, tokens
from .errors import ApiError, TokenError
from .models import SimulatedApp

FLEET_SCOPE = "fleet:clearance"
ELIGIBILITY_SCOPE = "vehicle:eligibility-check"
DATA_SCOPE = "vehicle:data"


def audiences(request: HttpRequest) -> set[str]:
    """``aud`` values accepted in assertions: this simulator's base URL + ``/v1``."""
    here = request.build_absolute_uri(reverse("simulator:index")).rstrip("/") + "/v1"
    configured = getattr(settings, "HM_SIMULATOR_BASE_URL", "").rstrip("/") + "/v1"
    return {here, configured}


def parse_body(request: HttpRequest) -> object:
    """JSON (what the spec says) or form-encoded (what some HM examples send)."""
    content_type = request.content_type or ""
    if content_type == "application/x-www-form-urlencoded":
        return (
            {key: request.POST.get(key) for key in request.POST} if request.method == "POST" else {}
        )
    if not request.body:
        return {}
    try:
        return parse_json(request.body)
    except UntrustedJsonError as exc:
        raise ApiError(400, "Bad Request", "The body is not valid JSON") from exc


def form_or_json(request: HttpRequest) -> dict:
    content_type = request.content_type or ""
    if content_type == "application/x-www-form-urlencoded" and request.method != "POST":
        return QueryDict(request.body).dict()
    try:
        body = parse_body(request)
    except ApiError as exc:
        raise TokenError("the body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise TokenError("the body must be an object")
    return body


def respond(body: object, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    if body is None:
        response = HttpResponse(status=status)
    else:
        response = JsonResponse(body, status=status, safe=False)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def endpoint(methods: tuple[str, ...]):
    """CSRF-exempt, login-free, method-checked; turns simulator errors into HM's bodies."""

    def decorate(view: Callable) -> Callable:
        @csrf_exempt
        @login_not_required
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                response = respond({"errors": [{"title": "Method not allowed"}]}, 405)
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except TokenError as exc:
                return respond(exc.body(), exc.status)
            except ApiError as exc:
                return respond(exc.body(), exc.status, exc.headers)

        return wrapper

    return decorate


def bearer_app(request: HttpRequest, scope: str, *, request_id: bool = False) -> SimulatedApp:
    app = auth.authenticate_bearer(
        request.headers.get("Authorization", ""), scope=scope, request_id=request_id
    )
    if scope == FLEET_SCOPE and not app.fleet_access:
        raise ApiError(
            403,
            "Forbidden",
            "This service account is not associated with a fleet.",
            "Authorization",
        )
    auth.apply_faults(app, request_id=request_id)
    return app


@endpoint(("GET",))
def index(request: HttpRequest) -> HttpResponse:
    return respond(
        {
            "name": "FleetPortal HM simulator",
            "base_url": request.build_absolute_uri(reverse("simulator:index")).rstrip("/"),
            "apps": SimulatedApp.objects.count(),
        }
    )


@endpoint(("POST", "DELETE"))
def access_tokens(request: HttpRequest) -> HttpResponse:
    body = form_or_json(request)
    if request.method == "DELETE":
        tokens.revoke_token(body, audiences(request))
        return respond(None)
    grant = body.get("grant_type")
    if grant == "client_credentials":
        _, answer = auth.client_credentials(body, audiences(request))
        return respond(answer)
    if grant in ("refresh_token", "refresh"):  # "refresh" is what the spec's examples send
        return respond(tokens.refresh_vehicle_token(body, audiences(request)))
    if not grant:
        raise TokenError("grant_type can't be blank")
    raise TokenError("grant_type is invalid", error="unsupported_grant_type")


@endpoint(("POST",))
def auth_tokens(request: HttpRequest) -> HttpResponse:
    body = parse_body(request)
    assertion = body.get("assertion") if isinstance(body, dict) else None
    if not assertion:
        raise ApiError(
            401,
            "Not authorized",
            "Missing or invalid assertion. It must be a JWT signed with the service account key",
            "Authorization",
        )
    return respond(auth.exchange_service_account_jwt(str(assertion), audiences(request)), 201)


@endpoint(("DELETE",))
def auth_token_detail(request: HttpRequest, auth_token: str) -> HttpResponse:
    return respond(tokens.revoke_auth_token(auth_token), 201)


@endpoint(("GET", "POST"))
def fleet_vehicles(request: HttpRequest) -> HttpResponse:
    app = bearer_app(request, FLEET_SCOPE)
    if request.method == "GET":
        return respond(services.list_clearances(app, request.GET.get("filter")))
    body = parse_body(request)
    if not isinstance(body, dict) or "vehicles" not in body:
        raise ApiError(422, "Unprocessable Entity", "vehicles is required", "vehicles")
    return respond({"vehicles": services.request_clearances(app, body["vehicles"])})


@endpoint(("GET", "DELETE"))
def fleet_vehicle(request: HttpRequest, vin: str) -> HttpResponse:
    app = bearer_app(request, FLEET_SCOPE)
    if request.method == "GET":
        return respond(services.get_clearance(app, vin))
    return respond(services.delete_clearance(app, vin))


@endpoint(("POST",))
def cancel_activation(request: HttpRequest, vin: str) -> HttpResponse:
    app = bearer_app(request, FLEET_SCOPE)
    return respond(services.delete_clearance(app, vin))


@endpoint(("POST",))
def fleet_access_tokens(request: HttpRequest) -> HttpResponse:
    app = bearer_app(request, FLEET_SCOPE)
    body = parse_body(request)
    return respond(tokens.issue_vehicle_token(app, body if isinstance(body, dict) else {}))


@endpoint(("POST",))
def eligibility(request: HttpRequest) -> HttpResponse:
    bearer_app(request, ELIGIBILITY_SCOPE)
    return respond(services.eligibility(parse_body(request)))


@endpoint(("GET",))
def vehicle_data(request: HttpRequest, vin: str) -> HttpResponse:
    app = bearer_app(request, DATA_SCOPE, request_id=True)
    return respond(services.vehicle_data(app, vin))
