"""Every tolerated difference from HM's official specs, written down once, with its reason.

The contract tests validate what our client sends and what the simulator answers against
../shared/hm-api/specs (openapi-core). Where HM's own material is inconsistent (PROTOCOL.md §8),
the check is relaxed here and only here. A relaxation never just ignores an error: the value is
re-checked against the corrected shape written below, and only that exact error is tolerated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from jsonschema import Draft7Validator


@dataclass(frozen=True)
class Deviation:
    id: str
    spec: str
    where: str
    what: str
    why: str


FILTER_IS_JSON = Deviation(
    "filter-is-url-encoded-json",
    "hm-fleet-clearance-v1.yml",
    "GET /v1/fleets/vehicles ?filter=",
    "The parameter is declared as `schema: {type: object}` with the default form style, which "
    "means key=value pairs, while its description says 'URL Encoded JSON' and every example is "
    "a JSON object (PROTOCOL.md §2.2).",
    "HM's own description and examples win: we send one JSON document; the check parses it and "
    "validates it as {field: {operator, value}} with the fields and operators of the examples.",
)
UNAUTHORIZED_NESTING = Deviation(
    "unauthorized-errors-nested-array",
    "hm-fleet-clearance-v1.yml (ClearanceUnauthorizedErrors), "
    "hm-service-account-token-v1.yml (UnauthorizedErrors)",
    "401 bodies",
    "`errors.items` references `Errors`, itself an array, so the schema wants a list of lists; "
    "the schema's own example, the vehicle-data and eligibility specs and hmkit-fleet all use a "
    "flat list of {title, detail, source} (PROTOCOL.md §2.8).",
    "The simulator sends the flat list; the check validates 401 bodies against "
    "{errors: [Error]} instead.",
)
REVOKE_WITH_ASSERTION = Deviation(
    "oauth-client-auth-by-assertion",
    "hm-oauth-rest-v1.yml (AccessTokensRevoke; refresh_token grant)",
    "DELETE /v1/access_tokens, POST /v1/access_tokens grant_type=refresh_token",
    "The revoke body requires client_secret. An application that authenticates with a private "
    "key (JWT client assertion) has no client secret; the spec allows client_assertion only "
    "for client_credentials.",
    "With private-key auth the client sends client_id + client_assertion_type + "
    "client_assertion (as for client_credentials) instead of client_secret; the check accepts "
    "a missing client_secret only when a well-formed assertion pair is present.",
)
FLEET_ACCESS_TOKENS_BODY = Deviation(
    "fleet-access-tokens-body",
    "hm-fleet-clearance-v1.yml",
    "POST /v1/fleets/access_tokens (deprecated)",
    "The operation declares no request body, yet the spec defines FleetAccessTokensRequest "
    "{vin} for it and hmkit-fleet v1 and HM's Postman collection send it (PROTOCOL.md §2.5).",
    "The client sends {vin}; the check validates it against FleetAccessTokensRequest.",
)

# Decisions that need no relaxation of the checks, listed so they are written down once too.
NOTES = (
    Deviation(
        "token-url-typo",
        "fleet, eligibility, vehicle-data specs",
        "securitySchemes.*.tokenUrl",
        "tokenUrl is /v1/access_token (singular, and api.sandbox... host order) (PROTOCOL.md §8.1).",
        "The client uses the paths: POST /v1/access_tokens on <base>.",
    ),
    Deviation(
        "refresh-grant-name",
        "hm-oauth-rest-v1.yml",
        "POST /v1/access_tokens",
        "The enum says grant_type refresh_token, the examples send `refresh` (PROTOCOL.md §8.3).",
        "The client sends refresh_token (RFC value); the simulator accepts both.",
    ),
    Deviation(
        "auth-tokens-response-example",
        "hm-service-account-token-v1.yml",
        "POST /v1/auth_tokens 201",
        "The example shows OAuth-style fields, the schema requires auth_token, valid_from, "
        "valid_until (PROTOCOL.md §8.4).",
        "The simulator answers the schema (validated); the client also reads the example's shape.",
    ),
    Deviation(
        "unknown-brand-example",
        "hm-fleet-clearance-v1.yml",
        "POST /v1/fleets/vehicles request example",
        "The example sends brand `unknown`, outside the enum, to show the per-VIN error "
        "(PROTOCOL.md §8.5).",
        "The client only sends enum brands (checked here); the simulator answers an unknown brand "
        "with a per-VIN `error` item, tested in tests/simulator.",
    ),
    Deviation(
        "cancel-activation-path-typo",
        "hm-fleet-clearance-v1.yml",
        "POST /v1/fleets/{vin}/cancel_activation",
        "Its description points to DELETE /v1/fleet/vehicles/{vin} (singular) (PROTOCOL.md §8.2).",
        "The client uses /v1/fleets/vehicles/{vin}.",
    ),
    Deviation(
        "webhook-bodies-undocumented",
        "none (webhooks have no spec; docs and HM's sample server, PROTOCOL.md §5)",
        "simulator webhooks: fleet_clearance_changed and ping bodies",
        "HM documents only vehicle.vin, event.action and event.detail for "
        "fleet_clearance_changed, and no body at all for ping; no time of the change is sent.",
        "The simulator's fleet_clearance_changed body has exactly those keys (no timestamp: the "
        "receiver must order webhooks by receive time and the graph). Its ping body "
        "{event: {type: ping}, application_id} is our guess; the receiver tells events apart by "
        "the X-HM-Event header (inferred from HM's sample), which the simulator sends.",
    ),
)

RELAXATIONS = (
    FILTER_IS_JSON,
    UNAUTHORIZED_NESTING,
    REVOKE_WITH_ASSERTION,
    FLEET_ACCESS_TOKENS_BODY,
)

_ERROR = {
    "type": "object",
    "required": ["title"],
    "properties": {
        "title": {"type": "string"},
        "source": {"type": "string"},
        "detail": {"type": "string"},
    },
}
FLAT_ERRORS_SCHEMA = {
    "type": "object",
    "required": ["errors"],
    "properties": {"errors": {"type": "array", "items": _ERROR}},
}
_FILTER_FIELDS = {
    "vin": ["eq", "in"],
    "status": ["eq", "in"],
    "brand": ["eq", "in"],
    "tags": ["eq", "contains"],
    "approved_at": ["eq", "lt", "gt", "lte", "gte"],
    "inserted_at": ["eq", "lt", "gt", "lte", "gte"],
}
FILTER_SCHEMA = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        name: {
            "type": "object",
            "required": ["operator", "value"],
            "additionalProperties": False,
            "properties": {"operator": {"enum": ops}, "value": {}},
        }
        for name, ops in _FILTER_FIELDS.items()
    },
}
FLEET_ACCESS_TOKENS_SCHEMA = {
    "type": "object",
    "required": ["vin"],
    "properties": {"vin": {"type": "string"}},
}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _text(error: Exception) -> str:
    parts = [str(error)]
    cause = error.__cause__
    while cause is not None:
        parts.append(str(cause))
        parts += [sub.message for sub in getattr(cause, "schema_errors", None) or []]
        cause = cause.__cause__
    return " | ".join(parts)


def _schema_messages(error: Exception) -> list[str]:
    messages = []
    cause = error.__cause__
    while cause is not None:
        messages += [sub.message for sub in getattr(cause, "schema_errors", None) or []]
        cause = cause.__cause__
    return messages


def _json_body(raw) -> object:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def request_error_tolerated(spec_name: str, exchange, error: Exception) -> Deviation | None:
    text = _text(error)
    method, path = exchange.request.method, exchange.path
    if (
        spec_name == "fleet"
        and method == "GET"
        and path == "/v1/fleets/vehicles"
        and "filter" in text
    ):
        query = parse_qs(urlsplit(exchange.request.url).query)
        values = query.get("filter") or []
        document = _json_body(values[0]) if len(values) == 1 else None
        if document is not None and Draft7Validator(FILTER_SCHEMA).is_valid(document):
            return FILTER_IS_JSON
    if spec_name == "oauth" and path == "/v1/access_tokens":
        body = _json_body(exchange.request.body)
        messages = _schema_messages(error)
        if (
            isinstance(body, dict)
            and body.get("client_assertion_type") == ASSERTION_TYPE
            and isinstance(body.get("client_assertion"), str)
            and body["client_assertion"].count(".") == 2
            and "client_secret" not in body
            and messages
            and all(m == "'client_secret' is a required property" for m in messages)
        ):
            return REVOKE_WITH_ASSERTION
    return None


def response_error_tolerated(spec_name: str, exchange, error: Exception) -> Deviation | None:
    if exchange.response.status_code == 401 and spec_name in ("fleet", "service_account"):
        body = _json_body(exchange.response.content)
        if body is not None and Draft7Validator(FLAT_ERRORS_SCHEMA).is_valid(body):
            return UNAUTHORIZED_NESTING
    return None


def extra_request_problems(spec_name: str, exchange) -> list[str]:
    """Checks a relaxation adds in place of the spec's (the corrected shapes above)."""
    if spec_name == "fleet" and exchange.path == "/v1/fleets/access_tokens":
        body = _json_body(exchange.request.body)
        validator = Draft7Validator(FLEET_ACCESS_TOKENS_SCHEMA)
        return [f"{FLEET_ACCESS_TOKENS_BODY.id}: {e.message}" for e in validator.iter_errors(body)]
    return []
