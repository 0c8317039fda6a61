"""Client requests and simulator responses validated against HM's official OpenAPI specs."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests

from clearance.hm import ClearanceRequest, HMClient, HMError, ServiceAccountAuth
from simulator import clock, services
from simulator.models import SimulatedApp
from simulator.vehicle_data import vehicle_state
from tests.contract import contract, deviations
from tests.simulator.helpers import AUTH_MODES, simulator_client

VIN = "WBADT43452G296403"

# openapi-core does not implement oauth2 security checks; the simulator's own tests cover
# tokens and scopes (tests/simulator), so this warning carries no information here.
pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")


@pytest.fixture
def sim(live_server, transactional_db):
    clock.reset()
    app, secrets = services.create_app("Contract app", approval_delay_seconds=5)
    yield live_server.url, app, secrets
    clock.reset()


def assert_valid(recorder, used=None):
    assert recorder.exchanges, "nothing was recorded"
    found = contract.problems(recorder.exchanges, used)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("mode", AUTH_MODES)
def test_every_endpoint_happy_path(sim, mode):
    base, _, secrets = sim
    recorder = contract.Recorder()
    client = simulator_client(base, secrets, mode, session=recorder.session())
    client.request_clearances(
        [
            ClearanceRequest(VIN, "bmw", {"cost_center": "A12"}),
            ClearanceRequest("2HM00000000000001", "sandbox", control_odometer_km=2050),
            ClearanceRequest("SHORT", "bmw"),
        ]
    )
    client.list_clearances()
    client.list_clearances({"status": {"operator": "in", "value": ["pending", "approved"]}})
    client.list_clearances({"tags": {"operator": "contains", "value": {"cost_center": "A12"}}})
    client.list_clearances({"inserted_at": {"operator": "gte", "value": "1999-03-31T00:00:00Z"}})
    clock.advance(timedelta(seconds=10))
    client.get_clearance(VIN)
    token = client.issue_vehicle_token(VIN)
    rotated = client.refresh_vehicle_token(token.refresh_token)
    client.revoke_token(rotated.refresh_token)
    client.revoke_token(rotated.access_token, token_type_hint="access_token")
    client.check_eligibility(VIN, "bmw")
    data = client.get_vehicle_data(VIN)
    assert not contract.vehicle_data_problems(data)
    client.delete_clearance(VIN)
    client.cancel_activation("2HM00000000000001")
    clock.advance(timedelta(seconds=10))
    client.get_clearance(VIN)
    paths = {
        (e.request.method, e.path.replace(VIN, "{vin}").replace("2HM00000000000001", "{vin}"))
        for e in recorder.exchanges
    }
    assert {
        ("POST", "/v1/fleets/vehicles"),
        ("GET", "/v1/fleets/vehicles"),
        ("GET", "/v1/fleets/vehicles/{vin}"),
        ("DELETE", "/v1/fleets/vehicles/{vin}"),
        ("POST", "/v1/fleets/{vin}/cancel_activation"),
        ("POST", "/v1/fleets/access_tokens"),
        ("POST", "/v1/access_tokens"),
        ("DELETE", "/v1/access_tokens"),
        ("POST", "/v1/eligibility"),
        ("GET", "/v1/vehicle-data/autoapi-13/{vin}"),
    } <= paths
    used: set[str] = set()
    assert_valid(recorder, used)
    expected = {deviations.FILTER_IS_JSON.id}
    if mode == "private_key":
        expected.add(deviations.REVOKE_WITH_ASSERTION.id)
    assert used == expected


def _expect_error(call):
    with pytest.raises(HMError) as info:
        call()
    return info.value


def test_error_responses(sim):
    base, app, secrets = sim
    recorder = contract.Recorder()
    session = recorder.session()
    client = simulator_client(base, secrets, session=session)
    assert _expect_error(lambda: client.get_clearance(VIN)).status_code == 404
    client.request_clearances([ClearanceRequest(VIN, "sandbox")])
    assert _expect_error(lambda: client.delete_clearance(VIN)).status_code == 422
    clock.advance(timedelta(seconds=10))
    client.delete_clearance(VIN)
    assert _expect_error(lambda: client.delete_clearance(VIN)).status_code == 409
    assert _expect_error(lambda: client.get_vehicle_data("2HM00000000000002")).status_code == 403
    assert _expect_error(lambda: client.check_eligibility("SHORT", "sandbox")).status_code == 422
    SimulatedApp.objects.filter(pk=app.pk).update(next_fault_status=429, next_fault_count=3)
    for call in (
        lambda: client.get_clearance(VIN),
        client.list_clearances,
        lambda: client.request_clearances([ClearanceRequest(VIN, "bmw")]),
    ):
        assert _expect_error(call).status_code == 429
    SimulatedApp.objects.filter(pk=app.pk).update(fleet_access=False)
    assert _expect_error(client.list_clearances).status_code == 403

    # 401 on the fleet API with an invalid token, and the token endpoint's 400
    for method, path in (
        ("GET", "/v1/fleets/vehicles"),
        ("POST", "/v1/fleets/vehicles"),
        ("DELETE", f"/v1/fleets/vehicles/{VIN}"),
    ):
        body = {"vehicles": []} if method == "POST" else None
        response = session.request(
            method,
            f"{base}/simulator{path}",
            json=body,
            headers={"Authorization": "Bearer nope"},
            timeout=10,
        )
        assert response.status_code == 401
    bad = simulator_client(
        base, secrets.__class__(**{**secrets.as_dict(), "client_secret": "wrong"}), session=session
    )
    assert _expect_error(bad.get_token).status_code == 400

    # legacy service account: 401 for a foreign key, 201 on revoke of an auth token
    other = HMClient(
        f"{base}/simulator",
        ServiceAccountAuth(secrets.service_account_key_id, services.generate_key_pair()[0]),
        session=session,
    )
    assert _expect_error(other.get_token).status_code == 401
    sa = simulator_client(base, secrets, "service_account", session=session)
    auth_token = sa.get_token().access_token
    assert (
        session.delete(f"{base}/simulator/v1/auth_tokens/{auth_token}", timeout=10).status_code
        == 201
    )

    used: set[str] = set()
    assert_valid(recorder, used)
    assert used == {deviations.UNAUTHORIZED_NESTING.id}


def test_validator_catches_violations(sim):
    """Guard against a silent validator: a wrong answer must be reported."""
    base, _, _ = sim
    prepared = requests.Request(
        "GET", f"{base}/simulator/v1/fleets/vehicles/{VIN}", headers={"Authorization": "Bearer x"}
    ).prepare()
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(
        {"vin": VIN, "status": "error", "brand": "mercedes_benz"}
    ).encode()
    response.headers["Content-Type"] = "application/json"
    response.request = prepared
    found = contract.problems([contract.Exchange(prepared, response)])
    assert found and "status" in " ".join(found)
    bad_filter = requests.Request(
        "GET",
        f"{base}/simulator/v1/fleets/vehicles",
        params={"filter": '{"colour": {"operator": "eq", "value": "red"}}'},
        headers={"Authorization": "Bearer x"},
    ).prepare()
    ok = requests.Response()
    ok.status_code = 200
    ok._content = b"[]"
    ok.headers["Content-Type"] = "application/json"
    assert contract.request_problems(contract.Exchange(bad_filter, ok))


@pytest.mark.parametrize(
    "vin",
    [
        "2HM00000000000001",
        "2HM00000000000002",
        VIN,
        "1HMD3W5DA8C7Y5DNA",
        "C0NNECT0000000000",
        "EXVETESTVIN000001",
    ],
)
def test_vehicle_data_matches_auto_api_l13(vin):
    start = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
    for minutes in range(0, 24 * 60, 37):
        state = vehicle_state(vin, start + timedelta(minutes=minutes), brand="mercedes-benz")
        assert not contract.vehicle_data_problems(state), (vin, minutes)
        assert state["brand"] == "mercedes_benz"


def test_vehicle_data_is_deterministic_and_moves():
    at = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
    assert vehicle_state(VIN, at) == vehicle_state(VIN, at)
    odometers = [
        vehicle_state(VIN, at + timedelta(hours=h))["diagnostics"]["odometer"]["data"]["value"]
        for h in range(0, 24, 2)
    ]
    assert odometers == sorted(odometers) and odometers[-1] > odometers[0]
    assert vehicle_state(VIN, at) != vehicle_state("2HM00000000000001", at)


def test_deviations_are_written_down_once():
    every = deviations.RELAXATIONS + deviations.NOTES
    ids = [d.id for d in every]
    assert len(ids) == len(set(ids))
    for d in every:
        assert d.spec and d.where and len(d.what) > 30 and len(d.why) > 30
