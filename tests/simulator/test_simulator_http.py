"""The HM client against the simulator over real HTTP (live_server): auth, tokens, errors."""

import json
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests

from clearance.hm import (
    AuthenticationError,
    BadRequestError,
    ClearanceRequest,
    ClientSecretAuth,
    ConflictError,
    ForbiddenError,
    HMClient,
    HMServerError,
    HMTimeout,
    NotFoundError,
    PrivateKeyAuth,
    RateLimited,
    ServiceAccountAuth,
    UnprocessableError,
    load_ec_private_key,
)
from simulator import services
from simulator.models import AppKey, IssuedToken, SimulatedApp
from tests.simulator.helpers import AUTH_MODES, simulator_client

VIN = "WBADT43452G296403"


class Clock:
    def __init__(self):
        self.now = datetime.now(UTC)

    def __call__(self):
        return self.now


@pytest.fixture
def base(live_server):
    return live_server.url


@pytest.mark.parametrize("mode", AUTH_MODES)
def test_request_list_delete_with_each_auth_mode(base, sim_app, sim_clock, mode):
    _, secrets = sim_app
    client = simulator_client(base, secrets, mode)
    results = client.request_clearances(
        [
            ClearanceRequest(VIN, "bmw", {"cost_center": "A12"}),
            ClearanceRequest("SHORT", "bmw"),
            ClearanceRequest("VIN01234567890123", "unknown"),
        ]
    )
    assert [(r.vin, r.status) for r in results] == [
        (VIN, "pending"),
        ("SHORT", "error"),
        ("VIN01234567890123", "error"),
    ]
    assert results[2].description == "The brand is invalid"
    assert results[0].tags == {"cost_center": "A12"}
    assert results[1].description == "vin should be 17 character(s)"

    assert [(v.vin, v.status) for v in client.list_clearances()] == [(VIN, "pending")]
    sim_clock.advance(timedelta(seconds=6))
    listed = client.list_clearances()
    assert listed[0].status == "approved" and listed[0].brand == "bmw"
    assert [e.status for e in listed[0].changelog] == ["pending", "approved"]

    deleted = client.delete_clearance(VIN)
    assert deleted.status == "revoking"
    sim_clock.advance(timedelta(seconds=6))
    assert client.get_clearance(VIN).status == "revoked"


def test_list_filter(base, sim_app, sim_clock):
    _, secrets = sim_app
    client = simulator_client(base, secrets)
    client.request_clearances(
        [
            ClearanceRequest(VIN, "bmw", {"team": "north"}),
            ClearanceRequest("2HM00000000000002", "mercedes-benz", {"team": "south"}),
        ]
    )
    sim_clock.advance(timedelta(seconds=10))
    approved = client.list_clearances({"status": {"operator": "eq", "value": "approved"}})
    assert [v.vin for v in approved] == [VIN]
    south = client.list_clearances({"tags": {"operator": "contains", "value": {"team": "south"}}})
    assert [v.vin for v in south] == ["2HM00000000000002"]
    both = client.list_clearances({"vin": {"operator": "in", "value": [VIN, "2HM00000000000002"]}})
    assert len(both) == 2
    # Looked up by the named VINs, the other conditions still apply.
    one = client.list_clearances({"vin": {"operator": "eq", "value": VIN}})
    assert [v.vin for v in one] == [VIN]
    named_approved = client.list_clearances(
        {
            "vin": {"operator": "in", "value": [VIN, "2HM00000000000002", "2HM00000000000009"]},
            "status": {"operator": "eq", "value": "approved"},
        }
    )
    assert [v.vin for v in named_approved] == [VIN]
    recent = client.list_clearances(
        {"approved_at": {"operator": "gte", "value": "2000-01-01T00:00:00Z"}}
    )
    assert [v.vin for v in recent] == [VIN]


def test_seed_vins_over_http(base, sim_app, sim_clock):
    _, secrets = sim_app
    client = simulator_client(base, secrets)
    client.request_clearances(
        [
            ClearanceRequest("2HM00000000000001", "sandbox", control_odometer_km=2050),
            ClearanceRequest("2HM00000000000002", "sandbox"),
            ClearanceRequest("2HM00000000000003", "sandbox"),
        ]
    )
    sim_clock.advance(timedelta(minutes=1))
    status = {v.vin: v.status for v in client.list_clearances()}
    assert status == {
        "2HM00000000000001": "approved",
        "2HM00000000000002": "pending",
        "2HM00000000000003": "pending",
    }
    sim_clock.advance(timedelta(hours=3))
    vehicles = {v.vin: v for v in client.list_clearances()}
    assert vehicles["2HM00000000000003"].status == "rejected"
    assert vehicles["2HM00000000000003"].reason
    assert vehicles["2HM00000000000002"].status == "pending"


def test_seed_vin_1_without_odometer_is_rejected(base, sim_app, sim_clock):
    _, secrets = sim_app
    client = simulator_client(base, secrets)
    client.request_clearances([ClearanceRequest("2HM00000000000001", "sandbox")])
    sim_clock.advance(timedelta(minutes=1))
    vehicle = client.get_clearance("2HM00000000000001")
    assert vehicle.status == "rejected" and "2050" in vehicle.reason
    # re-onboarding with the odometer works and keeps the earlier history
    client.request_clearances(
        [ClearanceRequest("2HM00000000000001", "sandbox", control_odometer_km=2050)]
    )
    sim_clock.advance(timedelta(minutes=1))
    vehicle = client.get_clearance("2HM00000000000001")
    assert vehicle.status == "approved"
    assert [e.status for e in vehicle.changelog] == ["pending", "rejected", "pending", "approved"]


def test_token_renewed_before_expiry(base, sim_app):
    app, secrets = sim_app
    clock = Clock()
    client = simulator_client(base, secrets, clock=clock)
    client.list_clearances()
    client.list_clearances()
    assert IssuedToken.objects.filter(app=app, kind="app").count() == 1
    clock.now += timedelta(seconds=241)  # 59 s left of 300: renew before it runs out
    client.list_clearances()
    assert IssuedToken.objects.filter(app=app, kind="app").count() == 2


@pytest.mark.parametrize("mode", AUTH_MODES)
def test_token_renewed_after_401(base, sim_app, mode):
    app, secrets = sim_app
    client = simulator_client(base, secrets, mode)
    client.list_clearances()
    IssuedToken.objects.filter(app=app).update(revoked_at=datetime.now(UTC))
    assert client.list_clearances() == []
    assert IssuedToken.objects.filter(app=app, revoked_at__isnull=True).count() == 1


def test_expired_token_on_simulator_clock_is_renewed(base, sim_app, sim_clock):
    _, secrets = sim_app
    client = simulator_client(base, secrets)
    client.list_clearances()
    sim_clock.advance(timedelta(hours=1))  # the simulator now thinks the token has expired
    assert client.list_clearances() == []


def test_rate_limited_then_ok(base, sim_app):
    app, secrets = sim_app
    client = simulator_client(base, secrets)
    client.get_token()
    SimulatedApp.objects.filter(pk=app.pk).update(
        next_fault_status=429, next_fault_count=1, retry_after_seconds=7
    )
    with pytest.raises(RateLimited) as info:
        client.list_clearances()
    assert info.value.retry_after == 7 and info.value.status_code == 429
    assert client.list_clearances() == []


def test_server_error_and_env_error_rate(base, sim_app, settings):
    app, secrets = sim_app
    client = simulator_client(base, secrets)
    client.get_token()
    SimulatedApp.objects.filter(pk=app.pk).update(next_fault_status=503, next_fault_count=1)
    with pytest.raises(HMServerError):
        client.list_clearances()
    settings.SIMULATOR_ERROR_RATE = 1.0
    with pytest.raises(HMServerError):
        client.list_clearances()
    settings.SIMULATOR_ERROR_RATE = 0.0
    assert client.list_clearances() == []


def test_get_by_vin_limited_to_60_per_minute(base, sim_app, sim_clock):
    _, secrets = sim_app
    client = simulator_client(base, secrets)
    client.request_clearances([ClearanceRequest(VIN, "bmw")])
    sim_clock.advance(
        timedelta(minutes=1)
        - timedelta(seconds=sim_clock.now().second + 0.5)
        + timedelta(seconds=1)
    )
    with pytest.raises(RateLimited) as info:
        for _ in range(61):
            client.get_clearance(VIN)
    assert 0 < info.value.retry_after <= 60


def test_timeout_on_a_socket_that_never_answers():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)  # the kernel accepts; nobody ever answers
    port = listener.getsockname()[1]
    try:
        client = HMClient(
            f"http://127.0.0.1:{port}", ClientSecretAuth("id", "secret"), timeout=(1, 0.5)
        )
        started = time.monotonic()
        with pytest.raises(HMTimeout) as info:
            client.list_clearances()
        assert info.value.is_transient
        assert time.monotonic() - started < 5
    finally:
        listener.close()


def test_error_bodies_become_exceptions(base, sim_app, sim_clock):
    _, secrets = sim_app
    client = simulator_client(base, secrets)
    with pytest.raises(NotFoundError) as missing:
        client.get_clearance(VIN)
    assert missing.value.errors[0].source == "vin"

    client.request_clearances([ClearanceRequest(VIN, "sandbox")])
    with pytest.raises(UnprocessableError) as not_supported:
        client.delete_clearance(VIN)  # pending sandbox VIN: cancellation unsupported
    assert not_supported.value.errors[0].detail == "cancellation is not supported for this vin"

    sim_clock.advance(timedelta(seconds=6))
    client.delete_clearance(VIN)
    with pytest.raises(ConflictError) as transition:
        client.delete_clearance(VIN)
    assert "transition" in transition.value.message
    sim_clock.advance(timedelta(seconds=6))
    with pytest.raises(ConflictError) as removed:
        client.cancel_activation(VIN)
    assert removed.value.errors[0].detail == "Clearance is already removed"

    with pytest.raises(UnprocessableError):
        client.check_eligibility("SHORT", "sandbox")


def test_cancel_pending_mercedes_after_a_day(base, sim_app, sim_clock):
    _, secrets = sim_app
    client = simulator_client(base, secrets)
    client.request_clearances([ClearanceRequest("2HM00000000000002", "mercedes-benz")])
    with pytest.raises(UnprocessableError) as early:
        client.delete_clearance("2HM00000000000002")
    assert early.value.errors[0].title == "too early"
    sim_clock.advance(timedelta(days=1, minutes=1))
    assert client.delete_clearance("2HM00000000000002").status == "canceling"
    sim_clock.advance(timedelta(seconds=10))
    assert client.get_clearance("2HM00000000000002").status == "canceled"


def test_bad_credentials(base, sim_app):
    _, secrets = sim_app
    bad = HMClient(f"{base}/simulator", ClientSecretAuth(secrets.client_id, "wrong"))
    with pytest.raises(AuthenticationError) as info:
        bad.list_clearances()
    assert info.value.status_code == 400
    assert "client_secret is invalid" in info.value.message


def test_missing_scope_is_forbidden(base, db, sim_clock):
    app, secrets = services.create_app("No data", scopes="fleet:clearance")
    client = simulator_client(base, secrets)
    with pytest.raises(ForbiddenError):
        client.get_vehicle_data(VIN)
    SimulatedApp.objects.filter(pk=app.pk).update(fleet_access=False)
    with pytest.raises(ForbiddenError) as no_fleet:
        client.list_clearances()
    assert "not associated with a fleet" in no_fleet.value.message


def _assertion(secrets, base, **overrides):
    claims = {
        "iss": secrets.private_key_id,
        "aud": f"{base}/simulator/v1",
        "iat": int(time.time()),
        "jti": str(uuid.uuid4()),
        "ver": 2,
        **overrides,
    }
    return jwt.encode(claims, load_ec_private_key(secrets.private_key_pem), algorithm="ES256")


def _token_request(base, secrets, assertion):
    return requests.post(
        f"{base}/simulator/v1/access_tokens",
        json={
            "grant_type": "client_credentials",
            "client_id": secrets.client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        timeout=10,
    )


def test_assertion_checks(base, sim_app):
    _, secrets = sim_app
    assertion = _assertion(secrets, base)
    assert _token_request(base, secrets, assertion).status_code == 200
    reused = _token_request(base, secrets, assertion)
    assert reused.status_code == 400
    assert reused.json() == {
        "error": "invalid_request",
        "error_description": "client_assertion jti has already been used",
    }
    stale = _token_request(base, secrets, _assertion(secrets, base, iat=int(time.time()) - 120))
    assert "iat" in stale.json()["error_description"]
    wrong_aud = _token_request(
        base, secrets, _assertion(secrets, base, aud="https://api.high-mobility.com/v1")
    )
    assert wrong_aud.json()["error_description"] == "client_assertion aud is invalid"
    other_key = services.generate_key_pair()[0]
    forged = jwt.encode(
        {
            "iss": secrets.private_key_id,
            "aud": f"{base}/simulator/v1",
            "iat": int(time.time()),
            "jti": "x",
            "ver": 2,
        },
        load_ec_private_key(other_key),
        algorithm="ES256",
    )
    assert (
        _token_request(base, secrets, forged).json()["error_description"]
        == "client_assertion signature is invalid"
    )
    AppKey.objects.filter(key_id=secrets.private_key_id).update(
        expires_at=datetime.now(UTC) - timedelta(days=1)
    )
    expired = _token_request(base, secrets, _assertion(secrets, base))
    assert expired.json()["error_description"] == "client_assertion is signed with an expired key"


def test_form_encoded_token_request_is_accepted(base, sim_app):
    _, secrets = sim_app
    response = requests.post(
        f"{base}/simulator/v1/access_tokens",
        data={
            "grant_type": "client_credentials",
            "client_id": secrets.client_id,
            "client_secret": secrets.client_secret,
        },
        timeout=10,
    )
    assert response.status_code == 200 and response.json()["expires_in"] == 300


def test_service_account_with_foreign_key_is_refused(base, sim_app):
    _, secrets = sim_app
    other_pem = services.generate_key_pair()[0]
    client = HMClient(
        f"{base}/simulator", ServiceAccountAuth(secrets.service_account_key_id, other_pem)
    )
    with pytest.raises(AuthenticationError) as info:
        client.get_token()
    assert info.value.status_code == 401


def test_private_key_from_console_json_file(base, sim_app):
    _, secrets = sim_app
    auth = PrivateKeyAuth.from_console_json(
        secrets.client_id, json.loads(secrets.console_key_json())
    )
    assert HMClient(f"{base}/simulator", auth).get_token().scopes >= {
        "fleet:clearance",
        "vehicle:data",
    }


def test_vehicle_tokens_issue_refresh_revoke(base, sim_app, sim_clock):
    _, secrets = sim_app
    client = simulator_client(base, secrets)
    client.request_clearances([ClearanceRequest(VIN, "bmw")])
    with pytest.raises(BadRequestError) as not_yet:  # 400 invalid_request: not approved yet
        client.issue_vehicle_token(VIN)
    assert "not approved" in not_yet.value.message
    sim_clock.advance(timedelta(seconds=6))
    issued = client.issue_vehicle_token(VIN)
    assert issued.refresh_token and issued.authorization_id and issued.scope
    refreshed = client.refresh_vehicle_token(issued.refresh_token)
    assert refreshed.refresh_token != issued.refresh_token
    with pytest.raises(AuthenticationError):  # rotated: the old refresh token is spent
        client.refresh_vehicle_token(issued.refresh_token)
    client.revoke_token(refreshed.refresh_token)
    with pytest.raises(AuthenticationError):
        client.refresh_vehicle_token(refreshed.refresh_token)
    pk_client = simulator_client(base, secrets, "private_key")
    again = pk_client.issue_vehicle_token(VIN)
    pk_client.revoke_token(again.refresh_token)  # assertion instead of client_secret


def test_eligibility_and_vehicle_data(base, sim_app, sim_clock):
    _, secrets = sim_app
    client = simulator_client(base, secrets)
    eligibility = client.check_eligibility("2HM00000000000001", "sandbox")
    assert eligibility.eligible and eligibility.data_delivery == ["pull", "push"]
    with pytest.raises(ForbiddenError):
        client.get_vehicle_data(VIN)  # no consent yet
    client.request_clearances([ClearanceRequest(VIN, "mercedes-benz")])
    sim_clock.advance(timedelta(seconds=6))
    first = client.get_vehicle_data(VIN)
    assert first["vin"] == VIN and first["brand"] == "mercedes_benz" and first["request_id"]
    odometer = first["diagnostics"]["odometer"]["data"]["value"]
    sim_clock.advance(timedelta(hours=6))
    later = client.get_vehicle_data(VIN)
    assert later["diagnostics"]["odometer"]["data"]["value"] > odometer
    assert later["vehicle_location"]["coordinates"] != first["vehicle_location"]["coordinates"]
