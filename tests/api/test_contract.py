"""Every endpoint's real answers (successes and errors) validate against /api/v1/openapi.json,
with openapi-core: what integrators generate clients from is what the server sends."""

import pytest
from django.test import override_settings
from django.utils import timezone
from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse

from clearance.models import ClearanceStatus
from telemetry.models import TelemetrySnapshot
from tests.api.conftest import ApiClient, vin
from tests.factories import ClearanceFactory, VehicleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def spec(reader):
    response = reader.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    return OpenAPI.from_dict(document)


def _check(spec, response, *, status=None):
    if status is not None:
        assert response.status_code == status, response.content[:300]
    spec.validate_response(
        DjangoOpenAPIRequest(response.wsgi_request), DjangoOpenAPIResponse(response)
    )
    return response


def test_every_endpoint_answers_as_documented(
    spec, reader, writer, organization, credential, monkeypatch
):
    monkeypatch.setattr(
        "clearance.services.defleet.queue_defleet", lambda ids, actor=None: len(ids)
    )
    approved = VehicleFactory(organization=organization, vin=vin(1), tags={"depot": "berlin"})
    ClearanceFactory(
        vehicle=approved,
        credential=credential,
        status=ClearanceStatus.APPROVED,
        status_changed_at=timezone.now(),
    )
    TelemetrySnapshot.objects.create(
        vehicle=approved,
        captured_at=timezone.now(),
        source="pull",
        data={},
        odometer_km=10.0,
        latitude=52.5,
        longitude=13.4,
        doors_locked=True,
    )
    VehicleFactory(organization=organization, vin=vin(2))
    anonymous = ApiClient(None)

    _check(spec, reader.get("/api/v1/vehicles", {"limit": 1}), status=200)
    _check(spec, reader.get("/api/v1/vehicles", {"status": "nope"}), status=400)
    _check(spec, anonymous.get("/api/v1/vehicles"), status=401)
    _check(spec, reader.get(f"/api/v1/vehicles/{vin(1)}"), status=200)
    _check(spec, reader.get(f"/api/v1/vehicles/{vin(2)}"), status=200)
    _check(spec, reader.get(f"/api/v1/vehicles/{vin(9)}"), status=404)
    _check(spec, reader.get(f"/api/v1/vehicles/{vin(1)}/events"), status=200)
    _check(
        spec,
        reader.get(f"/api/v1/vehicles/{vin(1)}/telemetry", {"since": "2020-01-01T00:00:00Z"}),
        status=200,
    )
    _check(spec, reader.get(f"/api/v1/vehicles/{vin(9)}/telemetry"), status=404)
    _check(spec, reader.get("/api/v1/changes"), status=200)
    _check(spec, reader.get("/api/v1/changes", {"cursor": "x"}), status=400)

    body = {
        "vehicles": [
            {"vin": vin(3), "brand": "vw", "tags": {"a": "b"}},
            {"vin": "short", "brand": "vw"},
        ]
    }
    _check(spec, reader.post("/api/v1/vehicles", body), status=403)
    _check(spec, writer.post("/api/v1/vehicles", body, **{"Idempotency-Key": "one"}), status=200)
    _check(spec, writer.post("/api/v1/vehicles", body, **{"Idempotency-Key": "one"}), status=200)
    _check(
        spec,
        writer.post(
            "/api/v1/vehicles",
            {"vehicles": [{"vin": vin(4), "brand": "vw"}]},
            **{"Idempotency-Key": "one"},
        ),
        status=422,
    )
    _check(spec, writer.post("/api/v1/vehicles", {"vehicles": [{"vin": vin(5)}]}), status=400)
    _check(
        spec,
        writer.post("/api/v1/vehicles/defleet", {"vins": [vin(1), vin(2), vin(9)]}),
        status=200,
    )
    _check(spec, reader.post("/api/v1/vehicles/defleet", {"vins": [vin(1)]}), status=403)
    with override_settings(API_RATE_LIMIT_PER_MINUTE=1):
        reader.get("/api/v1/vehicles")
        limited = _check(spec, reader.get("/api/v1/vehicles"), status=429)
        assert int(limited["Retry-After"]) >= 1


def test_rate_limit_per_token(reader, writer, organization):
    with override_settings(API_RATE_LIMIT_PER_MINUTE=3):
        answers = [reader.get("/api/v1/vehicles") for _ in range(5)]
        assert [a.status_code for a in answers].count(200) >= 3
        limited = [a for a in answers if a.status_code == 429]
        assert limited, "the fourth request within a minute is refused"
        error = limited[0].json()["error"]
        assert error["code"] == "rate_limited"
        assert 1 <= int(limited[0]["Retry-After"]) <= 60
        # Another token has its own budget.
        assert writer.get("/api/v1/vehicles").status_code == 200


def test_api_answers_are_never_cached_by_a_proxy(reader):
    assert "no-store" in reader.get("/api/v1/vehicles")["Cache-Control"]
