"""Wiring between a Credential and the MQTT consumer (used by ``manage.py stream_consume``)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import close_old_connections

from clearance.models import Credential
from telemetry import services
from telemetry.mqtt import (
    Handler,
    MqttConfig,
    RecentIds,
    StreamConsumer,
    TlsMaterial,
    config_from_url,
)
from telemetry.parse import TelemetryParseError, parse_json

logger = logging.getLogger("telemetry.stream")


class StreamSetupError(Exception):
    """The credential cannot stream (no application id, no client certificate...)."""


def topic_for(credential: Credential) -> str:
    """HM MQTT v2: every message of an application on ``live/level13/<application id>``.

    No wildcard, not even for the simulator: the application id is what keeps another
    organization's messages for the same VIN out of this one.
    """
    app_id = (credential.app_id or "").strip()
    if not app_id or any(c in app_id for c in "+#/"):
        raise StreamSetupError(
            f"Credential {credential.name!r} has no valid High Mobility application id, so the "
            "stream cannot start: without it we cannot tell this organization's vehicle data "
            "from another's. Copy the application id from the HM console (for the simulator: "
            "the simulated app's id; `manage.py demo` sets it) into the credential."
        )
    return f"live/level13/{app_id}"


def config_for(credential: Credential, client_id: str | None = None) -> MqttConfig:
    client_id = client_id or f"fleetportal-{credential.public_id}"
    topic = topic_for(credential)
    if credential.environment == "simulator":
        # The local simulator broker: plain TCP.
        return config_from_url(settings.SIMULATOR_MQTT_URL, client_id=client_id, topic=topic)
    if not credential.mqtt_client_certificate or not credential.mqtt_client_key:
        raise StreamSetupError(
            f"Credential {credential.name!r} has no MQTT client certificate and key. Download "
            "them from the HM console (API Credentials, Streaming, MQTT V2) and add them."
        )
    return MqttConfig(
        host=settings.HM_MQTT_HOST,
        port=settings.HM_MQTT_PORT,
        client_id=client_id,
        topic=topic,
        tls=TlsMaterial(
            certificate_pem=credential.mqtt_client_certificate,
            key_pem=credential.mqtt_client_key,
            ca_file=settings.HM_MQTT_CA_FILE or None,
        ),
    )


def make_handler(credential: Credential) -> Handler:
    """Store each message once: a recent-id memory first, the database constraint behind it."""
    recent = RecentIds()

    def handle(payload: bytes, topic: str) -> None:
        close_old_connections()  # a long-running process must not reuse a dead connection
        try:
            message_id = parse_json(payload).message_id
        except TelemetryParseError:
            message_id = None
        if message_id and recent.seen(message_id):
            return
        snapshot = services.ingest_stream_message(payload, credential=credential)
        if message_id:
            recent.add(message_id)
        if snapshot is not None:
            logger.debug("Stored stream snapshot %s from %s", snapshot.pk, topic)

    return handle


def consumer_for(credential: Credential, client_id: str | None = None) -> StreamConsumer:
    return StreamConsumer(config_for(credential, client_id), make_handler(credential))
