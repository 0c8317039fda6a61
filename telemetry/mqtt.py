"""A long-running MQTT consumer for HM's streaming API (paho-mqtt 2; no Django imports).

* QoS 1 subscription with a persistent session (``clean_session=False`` and a stable client id),
  so the broker keeps messages for us while we are away.
* Messages are acknowledged only after the handler returned (``manual_ack``): a crash or a
  database outage before that means the broker delivers the message again. Duplicates are fine
  because the handler de-duplicates on ``message_id``.
* Reconnects with exponential backoff and jitter; :meth:`StreamConsumer.stop` (called from a
  SIGTERM handler) ends the loop cleanly with a DISCONNECT.
* TLS with a client certificate (HM) or plain TCP (the local simulator broker).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import ssl
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

logger = logging.getLogger(__name__)


class PermanentMessageError(Exception):
    """The message can never be processed (not JSON, unknown VIN...): acknowledge and move on."""


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    certificate_pem: str
    key_pem: str
    ca_file: str | None = None  # None: the system trust store


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str
    port: int
    client_id: str
    topic: str
    tls: TlsMaterial | None = None
    username: str | None = None
    password: str | None = None
    keepalive: int = 60
    qos: int = 1


def config_from_url(url: str, *, client_id: str, topic: str) -> MqttConfig:
    """``mqtt://user:pass@host:1883`` (plain TCP, local simulator broker) -> MqttConfig."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp"):
        raise ValueError(f"unsupported MQTT URL scheme {parts.scheme!r}; use mqtt://host:port")
    return MqttConfig(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 1883,
        client_id=client_id,
        topic=topic,
        username=parts.username,
        password=parts.password,
    )


def tls_context(material: TlsMaterial) -> ssl.SSLContext:
    """An SSL context with the client certificate loaded.

    ``load_cert_chain`` only reads files, so the PEMs go to a private temporary directory that
    is removed as soon as they are loaded: the key never stays on disk.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=material.ca_file)
    with tempfile.TemporaryDirectory(prefix="fp-mqtt-") as tmp:
        cert_path = os.path.join(tmp, "client.crt")
        key_path = os.path.join(tmp, "client.key")
        for path, text in ((cert_path, material.certificate_pem), (key_path, material.key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
        context.load_cert_chain(cert_path, key_path)
    return context


class Backoff:
    """Exponential backoff with full jitter: 1, 2, 4 ... up to ``maximum`` seconds."""

    def __init__(self, minimum: float = 1.0, maximum: float = 60.0) -> None:
        self.minimum, self.maximum, self.attempt = minimum, maximum, 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.minimum * (2**self.attempt))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class RecentIds:
    """A bounded set of recently seen message ids (cheap first-line de-duplication)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen(self, message_id: str) -> bool:
        return message_id in self._ids

    def add(self, message_id: str) -> None:
        self._ids[message_id] = None
        self._ids.move_to_end(message_id)
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)


# handler(payload, topic) stores the message; raises PermanentMessageError for poison messages.
Handler = Callable[[bytes, str], None]


class StreamConsumer:
    def __init__(
        self,
        config: MqttConfig,
        handler: Handler,
        *,
        backoff: Backoff | None = None,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.handler = handler
        self.backoff = backoff or Backoff()
        self.on_connected = on_connected
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._needs_reconnect = False
        self.stats = {"received": 0, "stored": 0, "rejected": 0, "failed": 0, "connects": 0}
        self.client = self._build_client()

    # -- setup --------------------------------------------------------------------------------

    def _build_client(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            clean_session=False,  # persistent session: the broker queues QoS 1 while we are away
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls is not None:
            client.tls_set_context(tls_context(cfg.tls))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    # -- paho callbacks ------------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            logger.warning("MQTT broker refused the connection: %s", reason_code)
            return
        self.stats["connects"] += 1
        logger.info(
            "Connected to MQTT %s:%s (session present: %s)",
            self.config.host,
            self.config.port,
            flags.session_present,
        )
        # Subscribe every time: harmless with a kept session, required without one.
        client.subscribe(self.config.topic, qos=self.config.qos)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if any(rc.is_failure for rc in reason_codes):
            logger.error("The broker refused the subscription to %s", self.config.topic)
            self._needs_reconnect = True
            return
        self.backoff.reset()
        self._connected.set()
        if self.on_connected:
            self.on_connected()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            logger.warning("Disconnected from MQTT: %s", reason_code)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        self.stats["received"] += 1
        try:
            self.handler(bytes(message.payload), message.topic)
        except PermanentMessageError as exc:
            self.stats["rejected"] += 1
            logger.warning("Dropped a stream message on %s: %s", message.topic, exc)
        except Exception:
            # Not acknowledged: reconnect so the broker delivers it again later.
            self.stats["failed"] += 1
            logger.exception("Could not store a stream message; will reconnect and get it again")
            self._needs_reconnect = True
            return
        else:
            self.stats["stored"] += 1
        client.ack(message.mid, message.qos)

    # -- running -------------------------------------------------------------------------------

    @property
    def connected(self) -> threading.Event:
        return self._connected

    def stop(self) -> None:
        """Ask the loop to end (safe from a signal handler or another thread)."""
        self._stop.set()

    def run(self) -> None:
        """Connect, consume and reconnect until :meth:`stop` is called."""
        while not self._stop.is_set():
            if not self._connect_once():
                self._sleep(self.backoff.next_delay())
                continue
            self._needs_reconnect = False
            while not self._stop.is_set() and not self._needs_reconnect:
                rc = self.client.loop(timeout=0.5)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
            if self._stop.is_set():
                break
            with contextlib.suppress(Exception):
                self.client.disconnect()
            delay = self.backoff.next_delay()
            logger.info("Reconnecting to MQTT in %.1f s", delay)
            self._sleep(delay)
        self._close()

    def _connect_once(self) -> bool:
        try:
            self.client.connect(self.config.host, self.config.port, keepalive=self.config.keepalive)
        except (OSError, ssl.SSLError) as exc:
            logger.warning("Cannot reach MQTT %s:%s: %s", self.config.host, self.config.port, exc)
            return False
        return True

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            if self.client.is_connected():
                self.client.disconnect()
                # Let paho flush the DISCONNECT packet if it is still queued.
                for _ in range(10):
                    if not self.client.want_write():
                        break
                    self.client.loop_write()
        self._connected.clear()
        logger.info("MQTT consumer stopped: %s", self.stats)
