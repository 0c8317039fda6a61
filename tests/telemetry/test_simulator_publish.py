"""``manage.py simulator_publish``: the simulator's approved vehicles on the local broker."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command

from simulator import clock
from simulator import services as sim
from simulator.management.commands.simulator_publish import approved_targets
from telemetry.mqtt import MqttConfig, StreamConsumer, config_from_url
from telemetry.parse import parse_stream
from tests.utils import require

from .test_stream import broker_up

pytestmark = pytest.mark.slow


@pytest.fixture
def sim_app(db):
    clock.reset()
    app, _secrets = sim.create_app("Publisher test", approval_delay_seconds=5)
    yield app
    clock.reset()


def test_only_approved_clearances_are_published(sim_app):
    sim.request_clearances(
        sim_app,
        [
            {"vin": "2HM00000000000004", "brand": "sandbox"},  # approved after 5 s
            {"vin": "2HM00000000000002", "brand": "sandbox"},  # stays pending forever
        ],
    )
    assert approved_targets() == []
    clock.advance(timedelta(seconds=30))
    targets = approved_targets()
    assert [(t.application_id, t.vin) for t in targets] == [
        (str(sim_app.app_id), "2HM00000000000004")
    ]


def test_publish_once_reaches_a_subscriber(sim_app, settings):
    require(broker_up(), f"no MQTT broker at {settings.SIMULATOR_MQTT_URL}")
    sim.request_clearances(sim_app, [{"vin": "2HM00000000000004", "brand": "sandbox"}])
    clock.advance(timedelta(seconds=30))
    received: list[bytes] = []
    config: MqttConfig = config_from_url(
        settings.SIMULATOR_MQTT_URL,
        client_id=f"fp-test-{uuid.uuid4().hex[:8]}",
        topic=f"live/level13/{sim_app.app_id}",
    )
    consumer = StreamConsumer(config, lambda payload, topic: received.append(payload))
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        assert consumer.connected.wait(10)
        call_command("simulator_publish", "--once")
        for _ in range(50):
            if received:
                break
            threading.Event().wait(0.1)
    finally:
        consumer.stop()
        thread.join(10)
    assert len(received) == 1
    message = json.loads(received[0])
    assert message["application_id"] == str(sim_app.app_id)
    parsed = parse_stream(message)
    assert parsed.vin == "2HM00000000000004" and parsed.odometer_km is not None
