from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone

from clearance.hm import errors as hm
from telemetry import pull, services
from telemetry.models import TelemetrySnapshot
from telemetry.mqtt import PermanentMessageError
from telemetry.parse import parse_rest
from tests.factories import ClearanceFactory, CredentialFactory, VehicleFactory

SAMPLES = Path(__file__).parent / "samples"
NOW = datetime(2026, 11, 21, 10, 5, tzinfo=UTC)


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def stream_message(
    vin: str, message_id: str = "M1", app_id: str = "48aa1779-91c2-468e-97e9-ab112efd53b9"
) -> bytes:
    envelope = sample("mqtt_v2.json")
    envelope.update(vin=vin, message_id=message_id, application_id=app_id)
    return json.dumps(envelope).encode()


@pytest.fixture
def vehicle(organization):
    return VehicleFactory(organization=organization, vin="1HMD3W5DA8C7Y5DNA")


@time_machine.travel(NOW, tick=False)
def test_it_stores_normalised_columns_and_raw_data(vehicle):
    snap = services.record_snapshot(vehicle, parse_rest(sample("rest_full.json")), source="pull")
    snap.refresh_from_db()
    assert snap.captured_at == datetime(2026, 11, 21, 10, 0, 7, tzinfo=UTC)  # HM's newest time
    assert snap.received_at == NOW
    assert snap.odometer_km == pytest.approx(12345.6)
    assert snap.fuel_level == pytest.approx(0.42)
    assert snap.battery_level == pytest.approx(0.81)
    assert (snap.latitude, snap.longitude) == (52.52, 13.4)
    assert snap.doors_locked is False
    assert snap.charging_state == "charging"
    assert snap.data["diagnostics"]["tire_pressures"][0]["data"]["location"] == "front_left"
    assert snap.fields_meta["fuel_level"]["timestamp"] == "2026-11-21T10:00:05+00:00"
    vehicle.refresh_from_db()
    assert vehicle.last_seen_at == snap.captured_at


@time_machine.travel(NOW, tick=False)
def test_last_seen_only_moves_forward(vehicle):
    services.record_snapshot(vehicle, parse_rest(sample("rest_full.json")), source="pull")
    older = parse_rest(
        {
            "diagnostics": {
                "odometer": {
                    "data": {"value": 1, "unit": "kilometers"},
                    "timestamp": "2026-11-20T00:00:00Z",
                }
            }
        }
    )
    services.record_snapshot(vehicle, older, source="pull")
    vehicle.refresh_from_db()
    assert vehicle.last_seen_at == datetime(2026, 11, 21, 10, 0, 7, tzinfo=UTC)


@time_machine.travel(NOW, tick=False)
def test_a_future_hm_timestamp_is_not_trusted(vehicle):
    future = parse_rest(
        {
            "diagnostics": {
                "odometer": {
                    "data": {"value": 1, "unit": "kilometers"},
                    "timestamp": "2027-01-01T00:00:00Z",
                }
            }
        }
    )
    snap = services.record_snapshot(vehicle, future, source="pull")
    assert snap.captured_at == NOW
    assert services.captured_at_is_receive_time(snap)
    assert snap.fields_meta["captured_at_reason"] == "hm_timestamp_in_future"
    vehicle.refresh_from_db()
    assert vehicle.last_seen_at == NOW  # HM says the data is newer than now


APP_ID = "48aa1779-91c2-468e-97e9-ab112efd53b9"  # the sample envelope's application


def test_stream_messages_are_deduplicated_by_message_id(vehicle, organization):
    credential = CredentialFactory(organization=organization, app_id=APP_ID)
    first = services.ingest_stream_message(stream_message(vehicle.vin), credential=credential)
    again = services.ingest_stream_message(stream_message(vehicle.vin), credential=credential)
    other = services.ingest_stream_message(stream_message(vehicle.vin, "M2"), credential=credential)
    assert first is not None and other is not None
    assert again is None
    assert TelemetrySnapshot.objects.filter(vehicle=vehicle).count() == 2
    assert first.source == "stream" and first.message_id == "M1"


def test_stream_rejects_vehicles_of_other_organizations(vehicle, other_organization):
    credential = CredentialFactory(organization=other_organization, app_id=APP_ID)
    with pytest.raises(PermanentMessageError, match="not in this organization"):
        services.ingest_stream_message(stream_message(vehicle.vin), credential=credential)
    assert not TelemetrySnapshot.objects.exists()


def test_stream_rejects_other_applications_and_garbage(vehicle, organization):
    credential = CredentialFactory(
        organization=organization, app_id="11111111-2222-3333-4444-555555555555"
    )
    with pytest.raises(PermanentMessageError, match="another application"):
        services.ingest_stream_message(stream_message(vehicle.vin), credential=credential)
    with pytest.raises(PermanentMessageError):
        services.ingest_stream_message(b"{not json", credential=credential)
    with pytest.raises(PermanentMessageError, match="message_id"):
        services.ingest_stream_message(
            json.dumps({"vin": vehicle.vin, "data": {}}).encode(), credential=credential
        )


def test_a_credential_without_application_id_stores_nothing(vehicle, organization):
    for app_id in ("", "   "):
        credential = CredentialFactory(organization=organization, app_id=app_id)
        with pytest.raises(PermanentMessageError, match="no High Mobility application id"):
            services.ingest_stream_message(stream_message(vehicle.vin), credential=credential)
    assert not TelemetrySnapshot.objects.exists()


def test_a_message_without_application_id_is_not_stored(vehicle, organization):
    credential = CredentialFactory(organization=organization, app_id=APP_ID)
    envelope = json.loads(stream_message(vehicle.vin))
    del envelope["application_id"]
    with pytest.raises(PermanentMessageError, match="no application_id"):
        services.ingest_stream_message(json.dumps(envelope).encode(), credential=credential)
    assert not TelemetrySnapshot.objects.exists()


def test_the_same_vin_in_two_organizations_gets_only_its_own_data(
    vehicle, organization, other_organization
):
    theirs = VehicleFactory(organization=other_organization, vin=vehicle.vin)
    ours_app, their_app = APP_ID, "11111111-2222-3333-4444-555555555555"
    ours = CredentialFactory(organization=organization, app_id=ours_app.upper())
    their_credential = CredentialFactory(organization=other_organization, app_id=their_app)
    message = stream_message(vehicle.vin, app_id=ours_app)
    with pytest.raises(PermanentMessageError, match="another application"):
        services.ingest_stream_message(message, credential=their_credential)
    assert services.ingest_stream_message(message, credential=ours) is not None  # any case
    assert TelemetrySnapshot.objects.filter(vehicle=vehicle).count() == 1
    assert not TelemetrySnapshot.objects.filter(vehicle=theirs).exists()


@time_machine.travel(NOW, tick=False)
def test_data_without_hm_time_is_marked_and_does_not_look_fresh(vehicle):
    vehicle.last_seen_at = NOW - timedelta(days=3)
    vehicle.save(update_fields=["last_seen_at"])
    no_time = {"diagnostics": {"odometer": {"data": {"value": 7, "unit": "kilometers"}}}}
    snap = services.record_snapshot(vehicle, parse_rest(no_time), source="pull")
    assert snap.captured_at == NOW  # our receive time: HM sent none
    assert services.captured_at_is_receive_time(snap)
    assert snap.fields_meta["captured_at_reason"] == "no_hm_timestamp"
    assert snap.fields_meta["odometer_km"]["timestamp"] is None
    vehicle.refresh_from_db()
    assert vehicle.last_seen_at == NOW - timedelta(days=3)  # not "seen just now"
    # The same answer on the next pull is not stored again.
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        again = services.record_snapshot(vehicle, parse_rest(no_time), source="pull")
    assert again.pk == snap.pk
    # Data with HM's time is not marked.
    timed = services.record_snapshot(vehicle, parse_rest(sample("rest_full.json")), source="pull")
    assert not services.captured_at_is_receive_time(timed)
    assert "captured_at_source" not in timed.fields_meta


def test_prune_deletes_old_history_in_batches(vehicle, settings):
    settings.TELEMETRY_RETENTION_DAYS = 30
    now = datetime.now(UTC)
    TelemetrySnapshot.objects.bulk_create(
        [
            TelemetrySnapshot(
                vehicle=vehicle, captured_at=now - timedelta(days=31 + i), source="pull", data={}
            )
            for i in range(7)
        ]
        + [
            TelemetrySnapshot(
                vehicle=vehicle, captured_at=now - timedelta(days=29), source="pull", data={}
            )
        ]
    )
    assert services.prune_snapshots(batch_size=3) == 7
    assert TelemetrySnapshot.objects.count() == 1


# ---- pulling ------------------------------------------------------------------------------------


class FakeClient:
    def __init__(self, answer):
        self.answer = answer
        self.calls: list[str] = []
        self.closed = False

    def get_vehicle_data(self, vin):
        self.calls.append(vin)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def close(self):
        self.closed = True


@pytest.fixture
def approved(organization):
    return ClearanceFactory(
        vehicle__organization=organization, vehicle__vin="1HMD3W5DA8C7Y5DNA", status="approved"
    )


def use_client(monkeypatch, answer) -> FakeClient:
    client = FakeClient(answer)
    monkeypatch.setattr(pull, "_client_for", lambda credential: client)
    return client


def test_pull_stores_a_snapshot(approved, monkeypatch):
    client = use_client(monkeypatch, sample("rest_full.json"))
    outcome = pull.pull_vehicle(approved.vehicle_id)
    assert outcome.ok, outcome.message
    assert client.calls == ["1HMD3W5DA8C7Y5DNA"] and client.closed
    snap = TelemetrySnapshot.objects.get(pk=outcome.snapshot_id)
    assert snap.source == "pull"
    assert pull.get_pull_status(approved.vehicle)["state"] == "ok"


@pytest.mark.parametrize(
    ("error", "words", "retryable"),
    [
        (
            hm.ForbiddenError(
                status_code=403,
                errors=[hm.HMErrorItem("Forbidden", "No active consent for this vehicle")],
            ),
            "no active consent",
            False,
        ),
        (
            hm.ForbiddenError(
                status_code=403, errors=[hm.HMErrorItem("Forbidden", "Privacy mode is active")]
            ),
            "privacy mode",
            False,
        ),
        (
            hm.VehicleUnreachable(
                status_code=408, errors=[hm.HMErrorItem("Vehicle is offline or asleep")]
            ),
            "offline or asleep",
            False,
        ),
        (
            hm.UnprocessableError(
                status_code=422,
                errors=[hm.HMErrorItem("Pending", "Vehicle data is not available yet")],
            ),
            "normal right after the clearance was approved",
            False,
        ),
        (hm.HMServerError(status_code=503), "trying again", True),
        (hm.RateLimited(status_code=429, retry_after=10), "too many requests", True),
    ],
)
def test_pull_explains_hm_answers_in_words(approved, monkeypatch, error, words, retryable):
    use_client(monkeypatch, error)
    outcome = pull.pull_vehicle(approved.vehicle_id)
    assert not outcome.ok
    assert words in outcome.message.lower()
    assert outcome.retryable is retryable
    assert not TelemetrySnapshot.objects.exists()
    status = pull.get_pull_status(approved.vehicle)
    assert status["message"] == outcome.message


def test_pull_needs_an_approved_clearance(organization, monkeypatch):
    client = use_client(monkeypatch, {})
    clearance = ClearanceFactory(vehicle__organization=organization, status="pending")
    outcome = pull.pull_vehicle(clearance.vehicle_id)
    assert not outcome.ok and "once the clearance is approved" in outcome.message
    assert client.calls == []
    no_clearance = VehicleFactory(organization=organization)
    assert "no clearance" in pull.pull_vehicle(no_clearance.pk).message


def test_refresh_queues_once_on_commit(approved, django_capture_on_commit_callbacks, monkeypatch):
    from telemetry import tasks

    sent: list[int] = []
    monkeypatch.setattr(
        tasks.pull_vehicle_telemetry, "delay", lambda pk, requested: sent.append(pk)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert pull.request_refresh(approved.vehicle) is True
        assert pull.request_refresh(approved.vehicle) is False  # already queued
    assert sent == [approved.vehicle_id]
    assert pull.get_pull_status(approved.vehicle)["state"] == "queued"


def test_pull_task_backs_off_transient_errors_on_the_row(approved, monkeypatch):
    from telemetry import tasks
    from telemetry.models import TelemetryPull

    use_client(monkeypatch, hm.HMServerError(status_code=500))
    tasks.pull_vehicle_telemetry.apply(args=[approved.vehicle_id], throw=True)  # no broker retry
    row = TelemetryPull.objects.get(vehicle_id=approved.vehicle_id)
    assert (row.state, row.attempts, row.outcome) == ("pending", 1, "retrying")
    assert row.next_attempt_at > timezone.now() and "trying again" in row.last_error.lower()


def test_an_unchanged_pull_answer_is_stored_once(vehicle):
    first = services.record_snapshot(vehicle, parse_rest(sample("rest_full.json")), source="pull")
    again = services.record_snapshot(vehicle, parse_rest(sample("rest_full.json")), source="pull")
    assert again.pk == first.pk
    changed = sample("rest_full.json")
    changed["diagnostics"]["speed"] = {
        "data": {"value": 60, "unit": "kilometers_per_hour"},
        "timestamp": "2026-11-21T10:01:00.000Z",
    }
    third = services.record_snapshot(vehicle, parse_rest(changed), source="pull")
    assert third.pk != first.pk
    assert TelemetrySnapshot.objects.filter(vehicle=vehicle).count() == 2
