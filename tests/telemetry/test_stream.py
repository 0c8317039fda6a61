"""The stream end to end against the real local Mosquitto (CI starts it when it is not running)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import paho.mqtt.publish as mqtt_publish
import pytest
from django.conf import settings

from simulator.publisher import Publisher, Target, envelope, topic_for
from telemetry.models import TelemetrySnapshot
from telemetry.stream import consumer_for
from tests.conftest import ROOT, wait_for
from tests.factories import ClearanceFactory, CredentialFactory, OrganizationFactory
from tests.support.db import database_url
from tests.utils import require

from . import schemas

pytestmark = pytest.mark.slow

VIN = "2HM00000000000004"


def broker_up() -> bool:
    parts = urlsplit(settings.SIMULATOR_MQTT_URL)
    try:
        with socket.create_connection((parts.hostname, parts.port or 1883), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def broker():
    require(broker_up(), f"no MQTT broker at {settings.SIMULATOR_MQTT_URL} (start mosquitto)")
    return settings.SIMULATOR_MQTT_URL


@pytest.fixture
def fleet(transactional_db):
    organization = OrganizationFactory(slug=f"stream-{uuid.uuid4().hex[:8]}")
    app_id = str(uuid.uuid4())
    credential = CredentialFactory(organization=organization, name="Simulator", app_id=app_id)
    clearance = ClearanceFactory(
        vehicle__organization=organization,
        vehicle__vin=VIN,
        credential=credential,
        status="approved",
    )
    return credential, clearance.vehicle, app_id


def run_in_thread(consumer) -> threading.Thread:
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    assert consumer.connected.wait(10), "consumer did not connect"
    return thread


def test_simulator_envelopes_match_hm_mqtt_v2_schemas():
    require(schemas.available(), f"HM's JSON schemas are not at {schemas.SCHEMA_DIR}")
    at = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    for vin in (VIN, "1HMD3W5DA8C7Y5DNA", "WVWZZZ1KZ00000001"):
        assert schemas.stream_errors(envelope(Target(str(uuid.uuid4()), vin), at)) == []


def test_published_vehicle_data_arrives_as_snapshots(broker, fleet):
    credential, vehicle, app_id = fleet
    consumer = consumer_for(credential, client_id=f"fp-test-{uuid.uuid4().hex[:8]}")
    thread = run_in_thread(consumer)
    try:
        start = datetime.now(UTC)
        with Publisher(broker, client_id=f"fp-test-pub-{uuid.uuid4().hex[:8]}") as publisher:
            for minute in range(3):
                publisher.publish([Target(app_id, VIN)], start + timedelta(minutes=minute))
        wait_for(
            lambda: TelemetrySnapshot.objects.filter(vehicle=vehicle).count() == 3,
            timeout=15,
            message="three stream snapshots",
        )
    finally:
        consumer.stop()
        thread.join(10)
    assert not thread.is_alive()
    snaps = list(TelemetrySnapshot.objects.filter(vehicle=vehicle).order_by("captured_at"))
    assert all(s.source == "stream" and s.message_id for s in snaps)
    assert snaps[0].odometer_km < snaps[-1].odometer_km or snaps[0].speed_kmh == 0  # it drives
    assert snaps[-1].latitude is not None
    vehicle.refresh_from_db()
    assert vehicle.last_seen_at == snaps[-1].captured_at


def test_duplicates_and_garbage_are_acknowledged_once(broker, fleet):
    credential, vehicle, app_id = fleet
    consumer = consumer_for(credential, client_id=f"fp-test-{uuid.uuid4().hex[:8]}")
    thread = run_in_thread(consumer)
    host = urlsplit(broker)
    try:
        body = json.dumps(envelope(Target(app_id, VIN), datetime.now(UTC)))
        topic = topic_for(app_id)
        for payload in (body, body, "not json", body):
            mqtt_publish.single(
                topic, payload, qos=1, hostname=host.hostname, port=host.port or 1883
            )
        wait_for(lambda: consumer.stats["received"] >= 4, timeout=10, message="four deliveries")
    finally:
        consumer.stop()
        thread.join(10)
    assert TelemetrySnapshot.objects.filter(vehicle=vehicle).count() == 1
    assert consumer.stats["rejected"] == 1 and consumer.stats["failed"] == 0


def test_persistent_session_keeps_messages_while_the_consumer_is_away(broker, fleet):
    credential, vehicle, app_id = fleet
    client_id = f"fp-test-{uuid.uuid4().hex[:8]}"
    first = consumer_for(credential, client_id=client_id)
    thread = run_in_thread(first)  # registers the QoS 1 subscription in a persistent session
    first.stop()
    thread.join(10)
    with Publisher(broker, client_id=f"fp-test-pub-{uuid.uuid4().hex[:8]}") as publisher:
        publisher.publish([Target(app_id, VIN)], datetime.now(UTC))
    second = consumer_for(credential, client_id=client_id)
    thread = run_in_thread(second)
    try:
        wait_for(
            lambda: TelemetrySnapshot.objects.filter(vehicle=vehicle).exists(),
            timeout=10,
            message="the message queued while offline",
        )
    finally:
        second.stop()
        thread.join(10)


def test_stream_consume_command_stops_cleanly_on_sigterm(broker, fleet):
    credential, vehicle, app_id = fleet
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fleetportal.settings_test",
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [
        sys.executable,
        "manage.py",
        "stream_consume",
        "--org",
        credential.organization.slug,
        "--credential",
        credential.name,
        "--client-id",
        f"fp-test-cmd-{uuid.uuid4().hex[:8]}",
    ]
    process = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        published = False
        while (
            time.monotonic() < deadline
            and not TelemetrySnapshot.objects.filter(vehicle=vehicle).exists()
        ):
            # Publish until the consumer (subscribing in its own time) has stored one.
            with Publisher(broker, client_id=f"fp-test-pub-{uuid.uuid4().hex[:8]}") as publisher:
                publisher.publish([Target(app_id, VIN)], datetime.now(UTC))
                published = True
            time.sleep(1)
        assert published and TelemetrySnapshot.objects.filter(vehicle=vehicle).exists()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "Stopped cleanly" in output


def test_consumer_reconnects_with_backoff_when_the_broker_is_down(fleet):
    credential, _vehicle, _app_id = fleet
    consumer = consumer_for(credential, client_id=f"fp-test-{uuid.uuid4().hex[:8]}")
    # A port where nothing listens: every attempt fails and the delay grows.
    consumer.config = dataclasses.replace(consumer.config, host="127.0.0.1", port=1)
    delays: list[float] = []
    original = consumer.backoff.next_delay

    def record() -> float:
        delay = original()
        delays.append(delay)
        if len(delays) >= 4:
            consumer.stop()
        return 0.01

    consumer.backoff.next_delay = record
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert len(delays) >= 4 and delays[3] > delays[0]


def test_the_same_vin_in_another_organization_gets_none_of_our_data(broker, fleet):
    """Two simulator credentials, two applications, one VIN: each consumer stores its own only."""
    credential, vehicle, app_id = fleet
    other_org = OrganizationFactory(slug=f"stream-{uuid.uuid4().hex[:8]}")
    other_app = str(uuid.uuid4())
    other_credential = CredentialFactory(organization=other_org, name="Simulator", app_id=other_app)
    other_vehicle = ClearanceFactory(
        vehicle__organization=other_org,
        vehicle__vin=VIN,
        credential=other_credential,
        status="approved",
    ).vehicle
    ours = consumer_for(credential, client_id=f"fp-test-{uuid.uuid4().hex[:8]}")
    theirs = consumer_for(other_credential, client_id=f"fp-test-{uuid.uuid4().hex[:8]}")
    threads = [run_in_thread(ours), run_in_thread(theirs)]
    host = urlsplit(broker)
    try:
        at = datetime.now(UTC)
        ours_body = json.dumps(envelope(Target(app_id, VIN), at))
        mqtt_publish.single(
            topic_for(app_id), ours_body, qos=1, hostname=host.hostname, port=host.port or 1883
        )
        # Our message on their topic (a misrouted delivery): still not stored for them.
        mqtt_publish.single(
            topic_for(other_app), ours_body, qos=1, hostname=host.hostname, port=host.port or 1883
        )
        wait_for(
            lambda: ours.stats["received"] >= 1 and theirs.stats["received"] >= 1,
            timeout=10,
            message="one delivery each",
        )
    finally:
        for consumer in (ours, theirs):
            consumer.stop()
        for thread in threads:
            thread.join(10)
    assert TelemetrySnapshot.objects.filter(vehicle=vehicle).count() == 1
    assert not TelemetrySnapshot.objects.filter(vehicle=other_vehicle).exists()
    assert theirs.stats["received"] == 1 and theirs.stats["rejected"] == 1
