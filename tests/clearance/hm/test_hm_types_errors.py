"""Types and errors of the framework-free HM client."""

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clearance.hm import (
    BRAND_LABELS,
    FLEET_BRANDS,
    AuthenticationError,
    BadRequestError,
    ClearanceRequest,
    ClearanceStatus,
    ConflictError,
    FleetVehicle,
    ForbiddenError,
    HMErrorItem,
    HMServerError,
    NotFoundError,
    PermanentError,
    RateLimited,
    TransientError,
    UnprocessableError,
    error_for_status,
    from_vehicle_data_brand,
    parse_error_items,
    to_vehicle_data_brand,
)

ROOT = Path(__file__).resolve().parents[3]


def test_importing_the_client_pulls_in_no_django():
    code = (
        "import sys, clearance.hm, clearance.hm.client, clearance.hm.auth;"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_status_parse_known_and_unknown():
    assert ClearanceStatus.parse("approved") == ClearanceStatus.APPROVED == "approved"
    assert ClearanceStatus.parse(" Pending ") is not None
    assert ClearanceStatus.parse(" Pending ") == "pending"
    weird = ClearanceStatus.parse("on_hold")
    assert weird == "on_hold" and not weird.is_known
    assert ClearanceStatus.parse(None) == "" and not ClearanceStatus.parse(None).is_known
    assert ClearanceStatus.parse(42) == "42"
    assert len(ClearanceStatus.KNOWN) == 8


def test_brands():
    assert len(FLEET_BRANDS) == 28 and "sandbox" in FLEET_BRANDS
    assert set(BRAND_LABELS) == set(FLEET_BRANDS)
    assert BRAND_LABELS["mercedes-benz"] == "Mercedes-Benz"
    assert to_vehicle_data_brand("mercedes-benz") == "mercedes_benz"
    assert to_vehicle_data_brand("volvo-cars") == "volvo_cars"
    assert from_vehicle_data_brand("mercedes_benz") == "mercedes-benz"
    assert from_vehicle_data_brand("volvo_cars") == "volvo-cars"
    assert from_vehicle_data_brand("land_rover") == "land_rover"
    for slug in FLEET_BRANDS:
        assert from_vehicle_data_brand(to_vehicle_data_brand(slug)) == slug


def test_clearance_request_json():
    assert ClearanceRequest("V" * 17, "bmw").to_json() == {"vin": "V" * 17, "brand": "bmw"}
    body = ClearanceRequest("V" * 17, "sandbox", {"a": "1"}, control_odometer_km=2050).to_json()
    assert body["tags"] == {"a": "1"}
    assert body["control_measures"] == {"odometer": {"value": 2050, "unit": "kilometers"}}


def test_fleet_vehicle_changelog_naive_timestamps_are_utc():
    vehicle = FleetVehicle.from_json(
        {
            "vin": "VIN0TESTVIN000000",
            "status": "rejected",
            "brand": "mercedes-benz",
            "tags": {"foo": "bar"},
            "changelog": [
                {"timestamp": "2022-03-22T10:36:51", "status": "rejected", "reason": "privacy"},
                {"timestamp": "2022-03-22T09:36:51", "status": "pending"},
                {"timestamp": "garbage", "status": "pending"},
            ],
        }
    )
    assert [e.status for e in vehicle.changelog] == ["pending", "rejected"]
    assert vehicle.changelog[0].timestamp == datetime(2022, 3, 22, 9, 36, 51, tzinfo=UTC)
    assert vehicle.status_changed_at == datetime(2022, 3, 22, 10, 36, 51, tzinfo=UTC)
    assert vehicle.reason == "privacy"


def test_parse_error_shapes():
    assert parse_error_items({"errors": [{"title": "T", "detail": "D", "source": "S"}]}) == [
        HMErrorItem("T", "D", "S")
    ]
    assert parse_error_items([{"title": "T"}]) == [HMErrorItem("T")]
    # the spec bug: an array nested in "errors"
    assert parse_error_items({"errors": [[{"title": "T"}]]}) == [HMErrorItem("T")]
    assert parse_error_items({"error": "invalid_request", "error_description": "bad"}) == [
        HMErrorItem("invalid_request", "bad")
    ]
    assert parse_error_items(None) == []


@pytest.mark.parametrize(
    ("status", "token_endpoint", "cls", "base"),
    [
        (400, True, AuthenticationError, PermanentError),
        (401, False, AuthenticationError, PermanentError),
        (400, False, BadRequestError, PermanentError),
        (403, False, ForbiddenError, PermanentError),
        (404, False, NotFoundError, PermanentError),
        (409, False, ConflictError, PermanentError),
        (422, False, UnprocessableError, PermanentError),
        (418, False, BadRequestError, PermanentError),
        (429, False, RateLimited, TransientError),
        (500, False, HMServerError, TransientError),
        (503, False, HMServerError, TransientError),
    ],
)
def test_error_for_status(status, token_endpoint, cls, base):
    error = error_for_status(
        status,
        {"errors": [{"title": "T", "detail": "D"}], "request_id": "rid"},
        token_endpoint=token_endpoint,
    )
    assert type(error) is cls and isinstance(error, base)
    assert error.status_code == status and error.request_id == "rid"
    assert error.errors == [HMErrorItem("T", "D")]
    assert "D" in error.message


def test_rate_limited_retry_after_from_detail_and_header():
    body = {"errors": [{"title": "Too many requests", "detail": "retry after 10s", "source": "x"}]}
    assert error_for_status(429, body).retry_after == 10
    assert error_for_status(429, body, headers={"Retry-After": "3"}).retry_after == 3
    assert error_for_status(429, {}).retry_after is None


def test_error_message_is_plain_words_without_body():
    error = error_for_status(409, None)
    assert error.message == "High Mobility cannot do that now."
    conflict = error_for_status(
        409, {"errors": [{"title": "Conflict", "detail": "Clearance is already removed"}]}
    )
    assert "Clearance is already removed" in conflict.message
