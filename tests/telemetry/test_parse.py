from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from telemetry.parse import (
    Coordinates,
    TelemetryParseError,
    parse_json,
    parse_rest,
    parse_stream,
    parse_timestamp,
)
from tests.utils import require

from . import schemas

SAMPLES = Path(__file__).parent / "samples"


def load(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def schemas_present() -> None:
    require(schemas.available(), f"HM's Auto API JSON schemas are not at {schemas.SCHEMA_DIR}")


# ---- the samples are real Auto API L13 (checked against HM's schemas) ----------------------


@pytest.mark.parametrize("name", ["rest_full.json", "rest_miles_failure.json"])
def test_rest_samples_match_the_rest_schema(schemas_present: None, name: str) -> None:
    assert schemas.rest_errors(load(name)) == []


def test_stream_sample_matches_the_mqtt_v2_schemas(schemas_present: None) -> None:
    assert schemas.stream_errors(load("mqtt_v2.json")) == []


def test_hm_fixture_envelope_parses(schemas_present: None) -> None:
    fixture = schemas.JANUS_DIR / "janus" / "0002" / "fixtures" / "example.json"
    envelope = json.loads(fixture.read_text())
    assert schemas.stream_errors(envelope) == []
    parsed = parse_stream(envelope)
    assert parsed.vin == "EXVETESTVIN000001"
    assert parsed.message_id == "ABCDEF"
    assert parsed.odometer_km is not None and parsed.odometer_km.value == 2050


def test_the_schema_check_rejects_a_wrong_shape(schemas_present: None) -> None:
    envelope = load("mqtt_v2.json")
    envelope["data"]["diagnostics"]["odometer"] = envelope["data"]["diagnostics"]["odometer"][0]
    assert schemas.stream_errors(envelope)  # a stream property must be a list
    rest = load("rest_full.json")
    rest["diagnostics"]["odometer"]["data"]["unit"] = "furlongs"
    assert schemas.rest_errors(rest)


# ---- REST shape -----------------------------------------------------------------------------


def test_it_normalises_the_rest_answer() -> None:
    parsed = parse_rest(load("rest_full.json"))
    assert (parsed.vin, parsed.brand, parsed.request_id) == (
        "1HMD3W5DA8C7Y5DNA",
        "sandbox",
        "2c85d1f9a23623ac5deeb7eecba61a5f",
    )
    assert parsed.odometer_km.value == pytest.approx(12345.6)
    assert parsed.odometer_km.timestamp == at("2026-11-21T10:00:00")
    assert parsed.fuel_level.value == pytest.approx(0.42)
    assert parsed.battery_level.value == pytest.approx(0.81)
    assert parsed.estimated_range_km.value == pytest.approx(310)
    assert parsed.charging_state.value == "charging"
    assert parsed.charging_state.timestamp == at("2026-11-21T09:59:00")
    assert parsed.coordinates.value == Coordinates(52.52, 13.4)
    assert parsed.heading_deg.value == pytest.approx(90)
    assert parsed.speed_kmh.value == pytest.approx(50)
    assert parsed.ignition.value == "on"
    assert parsed.doors_locked.value is False
    assert [(d.location, d.locked, d.open) for d in parsed.doors] == [
        ("front_left", True, False),
        ("front_right", True, False),
        ("rear_left", False, True),
        ("rear_right", True, False),
    ]
    assert parsed.latest_timestamp == at("2026-11-21T10:00:07")
    assert parsed.problems == []


def test_it_keeps_the_raw_data_untouched() -> None:
    payload = load("rest_full.json")
    parsed = parse_rest(payload)
    assert parsed.raw["diagnostics"]["tire_pressures"] == payload["diagnostics"]["tire_pressures"]
    assert "vin" not in parsed.raw  # metadata is kept on the parsed object, not in raw


def test_it_converts_miles_and_other_units() -> None:
    parsed = parse_rest(load("rest_miles_failure.json"))
    assert parsed.odometer_km.value == pytest.approx(1609.344)
    assert parsed.speed_kmh.value == pytest.approx(48.28032)
    assert parsed.estimated_range_km.value == pytest.approx(250)  # Scandinavian miles
    assert parsed.heading_deg.value == pytest.approx(180)
    assert parsed.ignition.value == "off"  # deprecated ignition.status still read


def test_it_keeps_failures_without_data() -> None:
    parsed = parse_rest(load("rest_miles_failure.json"))
    assert parsed.fuel_level.value is None
    assert parsed.fuel_level.failure.reason == "pending"
    assert parsed.fuel_level.timestamp == at("2026-11-21T08:01:00")
    assert "not available yet" in parsed.fuel_level.failure.in_words
    assert parsed.coordinates.value is None
    assert parsed.coordinates.failure.reason == "privacy_mode_active"
    assert parsed.coordinates.timestamp is None
    assert parsed.fields_json()["coordinates"] == {
        "value": None,
        "timestamp": None,
        "failure": {"reason": "privacy_mode_active", "description": "Privacy mode is active"},
    }


@pytest.mark.parametrize(
    ("unit", "value", "km"),
    [
        ("meters", 1500, 1.5),
        ("kilometers", 2, 2),
        ("miles", 10, 16.09344),
        ("feet", 5280, 1.609344),
        ("nautical_miles", 1, 1.852),
        ("yards", 1760, 1.609344),
        ("megameters", 1, 1000),
    ],
)
def test_length_units(unit: str, value: float, km: float) -> None:
    parsed = parse_rest({"diagnostics": {"odometer": {"data": {"value": value, "unit": unit}}}})
    assert parsed.odometer_km.value == pytest.approx(km)


def test_a_property_may_also_be_a_list_in_the_rest_shape() -> None:
    parsed = parse_rest(
        {
            "diagnostics": {
                "odometer": [
                    {
                        "data": {"value": 5, "unit": "kilometers"},
                        "timestamp": "2026-01-02T00:00:00Z",
                    },
                    {
                        "data": {"value": 4, "unit": "kilometers"},
                        "timestamp": "2026-01-01T00:00:00Z",
                    },
                ]
            }
        }
    )
    assert parsed.odometer_km.value == 5


def test_bad_values_become_problems_not_crashes() -> None:
    parsed = parse_rest(
        {
            "diagnostics": {
                "odometer": {
                    "data": {"value": 1, "unit": "furlongs"},
                    "timestamp": "2026-01-01T00:00:00Z",
                },
                "fuel_level": {"data": 42, "timestamp": "2026-01-01T00:00:00Z"},
            },
            "vehicle_location": {"coordinates": {"data": {"latitude": 123, "longitude": 0}}},
        }
    )
    assert parsed.odometer_km is None
    assert parsed.fuel_level is None  # 42 is not a 0..1 fraction; never guessed
    assert parsed.coordinates is None
    assert len(parsed.problems) == 3


def test_it_rejects_what_is_not_auto_api() -> None:
    with pytest.raises(TelemetryParseError):
        parse_rest({"vin": "X"})
    with pytest.raises(TelemetryParseError):
        parse_json(b"not json")
    with pytest.raises(TelemetryParseError):
        parse_stream({"message_id": "1", "data": "nope"})


# ---- MQTT v2 envelope -------------------------------------------------------------------------


def test_it_normalises_the_stream_envelope() -> None:
    parsed = parse_json(json.dumps(load("mqtt_v2.json")).encode())
    assert parsed.message_id == "9F3B2C1D0A"
    assert parsed.version == 3  # not hard-checked
    assert parsed.application_id == "48aa1779-91c2-468e-97e9-ab112efd53b9"
    assert parsed.odometer_km.value == pytest.approx(2050)
    assert parsed.odometer_km.timestamp == datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)
    assert parsed.speed_kmh.value == pytest.approx(36)
    assert parsed.heading_deg.value == pytest.approx(90)
    assert parsed.charging_state.value == "not_charging"
    assert parsed.ignition.value == "off"


def test_the_newest_entry_wins_and_older_failures_are_dropped() -> None:
    parsed = parse_stream(load("mqtt_v2.json"))
    assert parsed.fuel_level.value == pytest.approx(0.45)
    assert parsed.fuel_level.timestamp == at("2026-11-21T10:00:00")
    assert parsed.fuel_level.failure is None  # the timeout at 09:30 is older than the value


def test_a_newer_failure_is_kept_next_to_the_last_value() -> None:
    parsed = parse_stream(
        {
            "message_id": "m",
            "data": {
                "diagnostics": {
                    "fuel_level": [
                        {"data": 0.3, "timestamp": "2026-01-01T00:00:00Z"},
                        {
                            "failure": {"reason": "oem_error", "description": "x"},
                            "timestamp": "2026-01-01T01:00:00Z",
                        },
                    ]
                }
            },
        }
    )
    assert parsed.fuel_level.value == pytest.approx(0.3)
    assert parsed.fuel_level.failure.reason == "oem_error"


def test_a_missing_timestamp_is_allowed() -> None:
    parsed = parse_stream(load("mqtt_v2.json"))
    assert parsed.battery_level.value == pytest.approx(0.6)
    assert parsed.battery_level.timestamp is None


def test_the_stream_track_is_ordered_by_time() -> None:
    parsed = parse_stream(load("mqtt_v2.json"))
    assert [r.value.latitude for r in parsed.track] == [48.1374, 48.1377, 48.1380]
    assert parsed.coordinates.value == Coordinates(48.1380, 11.5760)
    assert len(parsed.fields_json()["track"]) == 3


def test_doors_without_an_overall_state_are_derived() -> None:
    parsed = parse_stream(load("mqtt_v2.json"))
    assert parsed.doors_locked.value is True
    assert {d.location: d.open for d in parsed.doors}["all"] is False


def test_fields_json_is_json_serialisable() -> None:
    for name in ("rest_full.json", "rest_miles_failure.json"):
        json.dumps(parse_rest(load(name)).fields_json())
    json.dumps(parse_stream(load("mqtt_v2.json")).fields_json())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-10-06T13:59:25.648943Z", datetime(2021, 10, 6, 13, 59, 25, 648943, tzinfo=UTC)),
        ("2021-10-06T13:59:25.6Z", datetime(2021, 10, 6, 13, 59, 25, 600000, tzinfo=UTC)),
        ("2021-10-06T13:59:25Z", datetime(2021, 10, 6, 13, 59, 25, tzinfo=UTC)),
        ("2021-10-06T15:59:25+02:00", datetime(2021, 10, 6, 13, 59, 25, tzinfo=UTC)),
        ("garbage", None),
        (None, None),
    ],
)
def test_timestamps(text: str | None, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected


def test_heading_radians_math() -> None:
    parsed = parse_rest(
        {"vehicle_location": {"heading": {"data": {"value": math.pi / 2, "unit": "radians"}}}}
    )
    assert parsed.heading_deg.value == pytest.approx(90)


# ---- door failures --------------------------------------------------------------------------


def test_door_lock_and_position_failures_are_kept() -> None:
    parsed = parse_rest(
        {
            "doors": {
                "locks": [
                    {
                        "data": {"location": "front_left", "lock_state": "locked"},
                        "timestamp": "2026-11-21T09:00:00Z",
                    },
                    {  # a failure that names no door: the whole property failed
                        "failure": {"reason": "execution_timeout", "description": ""},
                        "timestamp": "2026-11-21T09:05:00Z",
                    },
                ],
                "positions": [
                    {
                        "data": {"location": "rear_left"},
                        "failure": {"reason": "oem_error", "description": "Sensor fault"},
                        "timestamp": "2026-11-21T09:06:00Z",
                    },
                    {
                        "data": {"location": "front_left", "position": "closed"},
                        "timestamp": "2026-11-21T09:00:00Z",
                    },
                ],
            }
        }
    )
    doors = {d.location: d for d in parsed.doors}
    assert list(doors) == ["front_left", "rear_left", "all"]
    assert doors["all"].locked is None
    assert doors["all"].lock_failure.reason == "execution_timeout"
    assert doors["all"].lock_timestamp == at("2026-11-21T09:05:00")
    assert doors["rear_left"].open is None
    assert (
        doors["rear_left"].position_failure.in_words
        == "The carmaker reported an error (Sensor fault)"
    )
    assert doors["rear_left"].position_timestamp == at("2026-11-21T09:06:00")
    assert (doors["front_left"].locked, doors["front_left"].open) == (True, False)
    assert doors["front_left"].lock_failure is None
    assert parsed.latest_timestamp == at("2026-11-21T09:06:00")
    meta = {d["location"]: d for d in parsed.fields_json()["doors"]}
    assert meta["rear_left"]["position_failure"] == {
        "reason": "oem_error",
        "description": "Sensor fault",
    }
    assert meta["all"]["lock_failure"]["reason"] == "execution_timeout"
    assert meta["front_left"]["lock_failure"] is None
    json.dumps(parsed.fields_json())


def test_a_newer_door_value_replaces_an_older_failure_but_not_the_reverse() -> None:
    failure = {"reason": "unknown", "description": ""}
    parsed = parse_stream(
        {
            "message_id": "M",
            "data": {
                "doors": {
                    "locks": [
                        {
                            "data": {"location": "front_left", "lock_state": "locked"},
                            "timestamp": "2026-11-21T10:00:00Z",
                        },
                        {
                            "data": {"location": "front_left"},
                            "failure": failure,
                            "timestamp": "2026-11-21T09:00:00Z",
                        },
                        {
                            "data": {"location": "front_right", "lock_state": "unlocked"},
                            "timestamp": "2026-11-21T09:00:00Z",
                        },
                        {
                            "data": {"location": "front_right"},
                            "failure": failure,
                            "timestamp": "2026-11-21T10:00:00Z",
                        },
                    ]
                }
            },
        }
    )
    doors = {d.location: d for d in parsed.doors}
    assert (doors["front_left"].locked, doors["front_left"].lock_failure) == (True, None)
    # A newer failure is kept next to the last value, which keeps its own timestamp.
    assert doors["front_right"].locked is False
    assert doors["front_right"].lock_failure.reason == "unknown"
    assert doors["front_right"].lock_timestamp == at("2026-11-21T09:00:00")


def test_a_lock_failure_alone_reaches_the_overall_door_state() -> None:
    parsed = parse_rest(
        {
            "doors": {
                "locks": [
                    {
                        "failure": {"reason": "privacy_mode_active", "description": ""},
                        "timestamp": "2026-11-21T09:05:00Z",
                    }
                ]
            }
        }
    )
    assert parsed.doors_locked.value is None
    assert parsed.doors_locked.failure.reason == "privacy_mode_active"
    assert parsed.doors_locked.timestamp == at("2026-11-21T09:05:00")
    assert parsed.fields_json()["doors_locked"]["failure"]["reason"] == "privacy_mode_active"
