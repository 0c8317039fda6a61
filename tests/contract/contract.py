"""Validate recorded HTTP exchanges against HM's official OpenAPI specs (openapi-core).

Exchanges are recorded from a real ``requests.Session`` (a response hook), so what is checked is
exactly what our client sent and what the simulator answered. The simulator's ``/simulator``
prefix and host are mapped onto the spec's production server before validation.
Tolerated spec problems live in ``deviations.py`` (one place, with reasons).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from jsonschema import Draft7Validator
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT7

from tests.contract import deviations

REPO = Path(__file__).resolve().parents[2]
HM_API_DIR = Path(os.environ.get("HM_API_DIR", REPO.parent / "shared" / "hm-api"))
SPECS_DIR = HM_API_DIR / "specs"
L13_DIR = HM_API_DIR / "auto-api-json-schema" / "main" / "L13"
SPEC_HOST = "https://api.high-mobility.com"

SPEC_FILES = {
    "oauth": "hm-oauth-rest-v1.yml",
    "fleet": "hm-fleet-clearance-v1.yml",
    "eligibility": "hm-eligibility-v1.yml",
    "vehicle_data": "hm-vehicle-data-api-v1.yml",
    "service_account": "hm-service-account-token-v1.yml",
}


def specs_available() -> bool:
    return (
        all((SPECS_DIR / name).is_file() for name in SPEC_FILES.values())
        and (L13_DIR / "capabilities").is_dir()
    )


@cache
def spec(name: str) -> OpenAPI:
    return OpenAPI.from_file_path(str(SPECS_DIR / SPEC_FILES[name]))


def spec_name_for(path: str) -> str:
    if path.startswith("/v1/access_tokens"):
        return "oauth"
    if path.startswith("/v1/auth_tokens"):
        return "service_account"
    if path.startswith("/v1/fleets/"):
        return "fleet"
    if path.startswith("/v1/eligibility"):
        return "eligibility"
    if path.startswith("/v1/vehicle-data/"):
        return "vehicle_data"
    raise ValueError(f"no HM spec covers {path}")


@dataclass
class Exchange:
    request: requests.PreparedRequest
    response: requests.Response

    @property
    def path(self) -> str:
        return urlsplit(self.request.url).path.removeprefix("/simulator")

    @property
    def label(self) -> str:
        return f"{self.request.method} {self.path} -> {self.response.status_code}"


@dataclass
class Recorder:
    """Attach to a session; every exchange through it is kept for validation."""

    exchanges: list[Exchange] = field(default_factory=list)

    def session(self) -> requests.Session:
        session = requests.Session()
        session.hooks["response"].append(self._hook)
        return session

    def _hook(self, response: requests.Response, *args, **kwargs) -> None:
        self.exchanges.append(Exchange(response.request, response))


def _as_spec_request(prepared: requests.PreparedRequest) -> RequestsOpenAPIRequest:
    copy = prepared.copy()
    parts = urlsplit(copy.url)
    copy.url = urlunsplit(
        ("https", "api.high-mobility.com", parts.path.removeprefix("/simulator"), parts.query, "")
    )
    return RequestsOpenAPIRequest(copy)


def _describe(error: Exception) -> str:
    parts = [f"{type(error).__name__}: {error}"]
    cause = error.__cause__
    while cause is not None:
        parts.append(str(cause))
        for sub in getattr(cause, "schema_errors", None) or []:
            where = ".".join(map(str, sub.absolute_path)) or "(body)"
            parts.append(f"{where}: {sub.message}")
        cause = cause.__cause__
    return " | ".join(parts)


def request_problems(exchange: Exchange, used: set[str] | None = None) -> list[str]:
    name = spec_name_for(exchange.path)
    found = []
    for error in spec(name).iter_request_errors(_as_spec_request(exchange.request)):
        deviation = deviations.request_error_tolerated(name, exchange, error)
        if deviation is not None:
            if used is not None:
                used.add(deviation.id)
            continue
        found.append(f"request {exchange.label}: {_describe(error)}")
    return found + [
        f"request {exchange.label}: {p}" for p in deviations.extra_request_problems(name, exchange)
    ]


def response_problems(exchange: Exchange, used: set[str] | None = None) -> list[str]:
    name = spec_name_for(exchange.path)
    request = _as_spec_request(exchange.request)
    response = RequestsOpenAPIResponse(exchange.response)
    found = []
    for error in spec(name).iter_response_errors(request, response):
        deviation = deviations.response_error_tolerated(name, exchange, error)
        if deviation is not None:
            if used is not None:
                used.add(deviation.id)
            continue
        found.append(f"response {exchange.label}: {_describe(error)}")
    return found


def problems(exchanges: list[Exchange], used: set[str] | None = None) -> list[str]:
    found: list[str] = []
    for exchange in exchanges:
        found += request_problems(exchange, used)
        found += response_problems(exchange, used)
    return found


# --- Auto API L13 JSON schemas (vehicle data) -------------------------------------------------


def _retrieve(uri: str) -> Resource:
    marker = "/L13/"
    if marker not in uri:
        raise NoSuchResource(ref=uri)
    local = L13_DIR / uri.split(marker, 1)[1].split("#", 1)[0]
    if not local.is_file():
        raise NoSuchResource(ref=uri)
    return DRAFT7.create_resource(json.loads(local.read_text()))


@cache
def _capability_validator(capability: str) -> Draft7Validator:
    schema = json.loads((L13_DIR / "capabilities" / f"{capability}.schema.json").read_text())
    return Draft7Validator(
        schema, registry=Registry(retrieve=_retrieve), format_checker=Draft7Validator.FORMAT_CHECKER
    )


def vehicle_data_problems(payload: dict) -> list[str]:
    """Every capability of a REST-shape payload against its L13 schema (main/ variant)."""
    found = []
    for name, body in payload.items():
        if name in ("request_id", "vin", "brand"):
            continue
        if not (L13_DIR / "capabilities" / f"{name}.schema.json").is_file():
            found.append(f"{name}: not an Auto API L13 capability")
            continue
        for error in _capability_validator(name).iter_errors(body):
            found.append(f"{name}.{'.'.join(map(str, error.absolute_path))}: {error.message}")
    return found
