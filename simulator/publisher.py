"""Publish the simulator's evolving vehicle data to an MQTT broker as HM MQTT v2 messages.

One message per vehicle and tick, on HM's v2 topic ``live/level13/<application id>``, with the
envelope ``{version, application_id, message_id, vin, data}`` where every property is a list
(PROTOCOL.md §6.2). The data is ``vehicle_state(vin, at)``, the same story the simulator's REST
endpoint tells, so pull and stream agree. Never imports clearance or vehicles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulator.vehicle_data import vehicle_state

logger = logging.getLogger(__name__)

ENVELOPE_VERSION = 2
_META = ("vin", "brand", "request_id")


@dataclass(frozen=True, slots=True)
class Target:
    application_id: str
    vin: str
    brand: str = "sandbox"


def topic_for(application_id: str, instance: str = "live") -> str:
    return f"{instance}/level13/{application_id}"


def message_id_for(application_id: str, vin: str, at: datetime) -> str:
    """Deterministic per (app, vin, instant): a re-published tick carries the same id."""
    key = f"{application_id}:{vin}:{at.astimezone(UTC).isoformat()}"
    return hashlib.sha256(key.encode()).hexdigest()[:32].upper()


def envelope(target: Target, at: datetime) -> dict:
    """The MQTT v2 envelope of one vehicle's state at ``at`` (every property a list)."""
    state = vehicle_state(target.vin, at, brand=target.brand)
    data = {
        capability: {
            name: prop if isinstance(prop, list) else [prop] for name, prop in properties.items()
        }
        for capability, properties in state.items()
        if capability not in _META and isinstance(properties, dict)
    }
    return {
        "version": ENVELOPE_VERSION,
        "application_id": target.application_id,
        "message_id": message_id_for(target.application_id, target.vin, at),
        "vin": target.vin.strip().upper(),
        "data": data,
    }


class Publisher:
    """A small synchronous publisher (QoS 1, waits for PUBACK) for ``mqtt://host:port`` URLs."""

    def __init__(
        self, url: str, *, client_id: str = "fleetportal-simulator", timeout: float = 10.0
    ):
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"SIMULATOR_MQTT_URL must be mqtt://host:port, not {url!r}")
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.timeout = timeout
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
        )
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password)
        self._connected = threading.Event()
        self.client.on_connect = lambda *args: self._connected.set()

    def __enter__(self) -> Publisher:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(self.timeout):
            self.client.loop_stop()
            raise ConnectionError(f"no answer from the MQTT broker at {self.host}:{self.port}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, targets: Iterable[Target], at: datetime, instance: str = "live") -> int:
        infos = []
        for target in targets:
            body = json.dumps(envelope(target, at), separators=(",", ":"))
            infos.append(
                self.client.publish(topic_for(target.application_id, instance), body, qos=1)
            )
        for info in infos:
            try:
                info.wait_for_publish(timeout=self.timeout)
            except (RuntimeError, ValueError) as exc:  # paho: not connected / queue full
                raise ConnectionError(f"publishing failed: {exc}") from exc
        sent = sum(1 for info in infos if info.is_published())
        logger.info("Published %s of %s vehicle messages", sent, len(infos))
        return sent
