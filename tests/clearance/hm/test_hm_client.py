"""HMClient against mocked HTTP (responses): auth modes, token life, errors, request shapes."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from clearance.hm import (
    AuthenticationError,
    ClearanceRequest,
    ClientSecretAuth,
    ConflictError,
    HMClient,
    HMConnectionError,
    HMServerError,
    HMTimeout,
    InMemoryTokenStore,
    NotFoundError,
    PrivateKeyAuth,
    RateLimited,
    ServiceAccountAuth,
    UnprocessableError,
    __version__,
)

BASE = "https://hm.example"
VIN = "1HMD3W5DA8C7Y5DNA"


def make_key():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key, pem


class Clock:
    def __init__(self):
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self):
        return self.now


def token_body(value="tok-1", expires_in=300):
    return {
        "access_token": value,
        "expires_in": expires_in,
        "scope": "fleet:clearance vehicle:eligibility-check vehicle:data",
        "token_type": "bearer",
    }


def add_token(rsps, *values):
    for value in values:
        rsps.add(responses.POST, f"{BASE}/v1/access_tokens", json=token_body(value))


def secret_client(**kwargs):
    return HMClient(BASE, ClientSecretAuth("cid", "s3cret"), **kwargs)


@responses.activate
def test_client_secret_token_request_and_bearer_and_user_agent():
    add_token(responses, "tok-1")
    responses.add(responses.GET, f"{BASE}/v1/fleets/vehicles", json=[])
    client = secret_client()
    assert client.list_clearances() == []
    token_call, list_call = responses.calls
    assert json.loads(token_call.request.body) == {
        "grant_type": "client_credentials",
        "client_id": "cid",
        "client_secret": "s3cret",
    }
    assert token_call.request.headers["Content-Type"] == "application/json"
    assert "Authorization" not in token_call.request.headers
    assert list_call.request.headers["Authorization"] == "Bearer tok-1"
    assert list_call.request.headers["User-Agent"].startswith(f"FleetPortal/{__version__}")


def test_timeouts_are_passed_on_every_call():
    seen = []

    class RecordingSession(requests.Session):
        def request(self, method, url, **kwargs):
            seen.append(kwargs.get("timeout"))
            return super().request(method, url, **kwargs)

    with responses.RequestsMock() as rsps:
        add_token(rsps, "tok-1")
        rsps.add(responses.GET, f"{BASE}/v1/fleets/vehicles", json=[])
        secret_client(session=RecordingSession(), timeout=(2, 7)).list_clearances()
    assert seen == [(2, 7), (2, 7)]


@responses.activate
def test_token_reused_then_renewed_before_expiry():
    add_token(responses, "tok-1", "tok-2")
    responses.add(responses.GET, f"{BASE}/v1/fleets/vehicles", json=[])
    clock = Clock()
    client = secret_client(clock=clock)
    client.list_clearances()
    clock.now += timedelta(seconds=200)  # 100 s left: still fresh (margin 60 s)
    client.list_clearances()
    assert [c.request.url for c in responses.calls].count(f"{BASE}/v1/access_tokens") == 1
    clock.now += timedelta(seconds=50)  # 50 s left: renewed before it runs out
    client.list_clearances()
    auths = [c.request.headers.get("Authorization") for c in responses.calls]
    assert auths[-1] == "Bearer tok-2"
    assert auths.count(None) == 2  # two token requests in all


@responses.activate
def test_401_renews_once_and_retries_once():
    add_token(responses, "tok-1", "tok-2")
    responses.add(
        responses.GET,
        f"{BASE}/v1/fleets/vehicles",
        status=401,
        json={"errors": [{"title": "Not authorized"}]},
    )
    responses.add(
        responses.GET, f"{BASE}/v1/fleets/vehicles", json=[{"vin": VIN, "status": "approved"}]
    )
    vehicles = secret_client().list_clearances()
    assert vehicles[0].status == "approved"
    auths = [c.request.headers.get("Authorization") for c in responses.calls]
    assert auths == [None, "Bearer tok-1", None, "Bearer tok-2"]


@responses.activate
def test_401_twice_is_an_authentication_error_without_more_retries():
    add_token(responses, "tok-1", "tok-2", "tok-3")
    responses.add(
        responses.GET,
        f"{BASE}/v1/fleets/vehicles",
        status=401,
        json={"errors": [{"title": "Not authorized"}]},
    )
    with pytest.raises(AuthenticationError):
        secret_client().list_clearances()
    assert len(responses.calls) == 4


@responses.activate
def test_bad_client_secret_is_authentication_error_with_description():
    responses.add(
        responses.POST,
        f"{BASE}/v1/access_tokens",
        status=400,
        json={"error": "invalid_request", "error_description": "client_secret is invalid"},
    )
    with pytest.raises(AuthenticationError) as info:
        secret_client().get_token()
    assert "client_secret is invalid" in info.value.message
    assert info.value.status_code == 400


@responses.activate
def test_server_error_is_not_retried():
    add_token(responses, "tok-1")
    responses.add(responses.POST, f"{BASE}/v1/fleets/vehicles", status=503, body="oops")
    with pytest.raises(HMServerError) as info:
        secret_client().request_clearances([ClearanceRequest(VIN, "sandbox")])
    assert info.value.is_transient
    assert len(responses.calls) == 2


@responses.activate
def test_rate_limited_reads_retry_after_detail():
    add_token(responses, "tok-1")
    responses.add(
        responses.GET,
        f"{BASE}/v1/fleets/vehicles/{VIN}",
        status=429,
        json={
            "errors": [
                {
                    "title": "Too many requests",
                    "detail": "retry after 10s",
                    "source": "fleet-manager-api:x",
                }
            ]
        },
    )
    with pytest.raises(RateLimited) as info:
        secret_client().get_clearance(VIN)
    assert info.value.retry_after == 10


@responses.activate
def test_timeout_and_connection_error_are_transient():
    add_token(responses, "tok-1")
    responses.add(responses.GET, f"{BASE}/v1/fleets/vehicles", body=requests.ReadTimeout("slow"))
    responses.add(
        responses.GET, f"{BASE}/v1/fleets/vehicles/{VIN}", body=requests.ConnectionError("down")
    )
    client = secret_client()
    with pytest.raises(HMTimeout):
        client.list_clearances()
    with pytest.raises(HMConnectionError):
        client.get_clearance(VIN)


@responses.activate
def test_request_clearances_batch_and_per_vin_errors():
    add_token(responses, "tok-1")
    responses.add(
        responses.POST,
        f"{BASE}/v1/fleets/vehicles",
        json={
            "vehicles": [
                {"vin": VIN, "status": "pending", "tags": {"a": "1"}},
                {"vin": "SHORT", "status": "error", "description": "vin should be 17 character(s)"},
            ]
        },
    )
    results = secret_client().request_clearances(
        [
            ClearanceRequest(VIN, "sandbox", {"a": "1"}),
            ClearanceRequest("SHORT", "bmw", control_odometer_km=2050),
        ]
    )
    assert [r.status for r in results] == ["pending", "error"]
    assert results[1].description == "vin should be 17 character(s)"
    sent = json.loads(responses.calls[1].request.body)
    assert sent == {
        "vehicles": [
            {"vin": VIN, "brand": "sandbox", "tags": {"a": "1"}},
            {
                "vin": "SHORT",
                "brand": "bmw",
                "control_measures": {"odometer": {"value": 2050, "unit": "kilometers"}},
            },
        ]
    }


@responses.activate
def test_list_filter_is_url_encoded_json():
    add_token(responses, "tok-1")
    responses.add(responses.GET, f"{BASE}/v1/fleets/vehicles", json=[])
    flt = {"status": {"operator": "in", "value": ["approved", "rejected"]}}
    secret_client().list_clearances(filter=flt)
    query = parse_qs(urlparse(responses.calls[1].request.url).query)
    assert json.loads(query["filter"][0]) == flt


@responses.activate
def test_delete_conflict_and_unprocessable_and_not_found():
    add_token(responses, "tok-1")
    url = f"{BASE}/v1/fleets/vehicles/{VIN}"
    responses.add(
        responses.DELETE,
        url,
        status=409,
        json={
            "errors": [
                {"title": "Conflict", "detail": "Clearance is already removed", "source": "vin"}
            ]
        },
    )
    responses.add(
        responses.DELETE,
        url,
        status=422,
        json={
            "errors": [
                {
                    "title": "too early",
                    "detail": "the pending status could only be canceled after 1 day it's created",
                    "source": "status",
                }
            ]
        },
    )
    responses.add(responses.DELETE, url, status=404, json={"errors": [{"title": "Not found"}]})
    responses.add(responses.DELETE, url, json={"vin": VIN, "status": "revoking", "tags": {}})
    client = secret_client()
    with pytest.raises(ConflictError) as conflict:
        client.delete_clearance(VIN)
    assert conflict.value.errors[0].source == "vin"
    with pytest.raises(UnprocessableError):
        client.delete_clearance(VIN)
    with pytest.raises(NotFoundError):
        client.delete_clearance(VIN)
    assert client.delete_clearance(VIN).status == "revoking"


@responses.activate
def test_private_key_assertion_claims():
    key, pem = make_key()
    add_token(responses, "tok-1")
    clock = Clock()
    auth = PrivateKeyAuth.from_console_json(
        "client-uuid", json.dumps({"private_key": pem, "id": "key-id"})
    )
    HMClient(BASE + "/", auth, clock=clock).get_token()
    body = json.loads(responses.calls[0].request.body)
    assert body["grant_type"] == "client_credentials"
    assert body["client_id"] == "client-uuid"
    assert body["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert jwt.get_unverified_header(body["client_assertion"]) == {"alg": "ES256", "typ": "JWT"}
    claims = jwt.decode(
        body["client_assertion"], key.public_key(), algorithms=["ES256"], audience=f"{BASE}/v1"
    )
    assert claims["iss"] == "key-id"
    assert claims["ver"] == 2
    assert claims["iat"] == int(clock.now.timestamp())
    assert len(claims["jti"]) == 36 and "exp" not in claims and "sub" not in claims


def test_private_key_rejects_bad_material():
    with pytest.raises(ValueError):
        PrivateKeyAuth("cid", "not a pem", "kid")
    with pytest.raises(ValueError):
        PrivateKeyAuth.from_console_json("cid", {"id": "x"})
    _, pem = make_key()
    assert "BEGIN" not in repr(PrivateKeyAuth("cid", pem, "kid"))
    assert "s3cret" not in repr(ClientSecretAuth("cid", "s3cret"))


@responses.activate
def test_service_account_exchange():
    key, pem = make_key()
    valid_until = "2026-01-01T12:05:00Z"
    responses.add(
        responses.POST,
        f"{BASE}/v1/auth_tokens",
        status=201,
        json={
            "auth_token": "auth-1",
            "valid_from": "2026-01-01T12:00:00Z",
            "valid_until": valid_until,
        },
    )
    responses.add(responses.GET, f"{BASE}/v1/fleets/vehicles", json=[])
    client = HMClient(BASE, ServiceAccountAuth("api-key-id", pem), clock=Clock())
    client.list_clearances()
    assertion = json.loads(responses.calls[0].request.body)["assertion"]
    claims = jwt.decode(assertion, key.public_key(), algorithms=["ES256"], audience=f"{BASE}/v1")
    assert claims["iss"] == "api-key-id"
    assert responses.calls[1].request.headers["Authorization"] == "Bearer auth-1"
    assert client.get_token().expires_at == datetime(2026, 1, 1, 12, 5, tzinfo=UTC)


@responses.activate
def test_vehicle_token_issue_refresh_revoke():
    add_token(responses, "tok-1")
    vt = {
        "access_token": "va",
        "refresh_token": "vr",
        "expires_in": 3600,
        "authorization_id": "auth",
        "scope": "diagnostics.get.odometer",
        "status": "approved",
        "token_type": "bearer",
    }
    responses.add(responses.POST, f"{BASE}/v1/fleets/access_tokens", json=vt)
    responses.add(
        responses.POST,
        f"{BASE}/v1/access_tokens",
        json={**vt, "access_token": "va2", "refresh_token": "vr2"},
    )
    responses.add(responses.DELETE, f"{BASE}/v1/access_tokens", status=200)
    clock = Clock()
    client = secret_client(clock=clock)
    issued = client.issue_vehicle_token(VIN)
    assert (issued.access_token, issued.refresh_token, issued.authorization_id) == (
        "va",
        "vr",
        "auth",
    )
    assert issued.expires_at == clock.now + timedelta(hours=1)
    assert json.loads(responses.calls[1].request.body) == {"vin": VIN}
    refreshed = client.refresh_vehicle_token("vr")
    assert refreshed.refresh_token == "vr2"
    assert json.loads(responses.calls[2].request.body) == {
        "grant_type": "refresh_token",
        "refresh_token": "vr",
        "client_id": "cid",
        "client_secret": "s3cret",
    }
    client.revoke_token("vr2")
    assert responses.calls[3].request.method == "DELETE"
    assert json.loads(responses.calls[3].request.body) == {
        "token": "vr2",
        "token_type_hint": "refresh_token",
        "client_id": "cid",
        "client_secret": "s3cret",
    }


@responses.activate
def test_eligibility_and_vehicle_data():
    add_token(responses, "tok-1")
    responses.add(
        responses.POST,
        f"{BASE}/v1/eligibility",
        json={
            "vin": VIN,
            "eligible": True,
            "data_delivery": ["pull", "push"],
            "connectivity_status": "activated",
            "primary_user_assigned": True,
        },
    )
    responses.add(
        responses.GET,
        f"{BASE}/v1/vehicle-data/autoapi-13/{VIN}",
        json={"vin": VIN, "brand": "sandbox"},
    )
    client = secret_client()
    eligibility = client.check_eligibility(VIN, "sandbox")
    assert eligibility.eligible and eligibility.data_delivery == ["pull", "push"]
    assert json.loads(responses.calls[1].request.body) == {"vin": VIN, "brand": "sandbox"}
    assert client.get_vehicle_data(VIN) == {"vin": VIN, "brand": "sandbox"}


def test_single_flight_token_renewal_across_threads():
    store = InMemoryTokenStore()
    calls = []

    def slow_token(request):
        calls.append(1)
        time.sleep(0.2)
        return 200, {}, json.dumps(token_body(f"tok-{len(calls)}"))

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.POST, f"{BASE}/v1/access_tokens", callback=slow_token)
        tokens = []
        clients = [secret_client(token_store=store) for _ in range(5)]
        threads = [
            threading.Thread(target=lambda c=c: tokens.append(c.get_token().access_token))
            for c in clients
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(calls) == 1
    assert tokens == ["tok-1"] * 5
