from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from telemetry.stream import StreamSetupError, config_for, topic_for
from tests.factories import CredentialFactory


def test_stream_consume_explains_a_missing_credential(organization):
    with pytest.raises(CommandError, match="no credentials"):
        call_command("stream_consume", "--org", organization.slug)
    with pytest.raises(CommandError, match="No HM application named"):
        call_command("stream_consume", "--org", organization.slug, "--credential", "nope")


def test_hm_credentials_need_a_client_certificate(organization):
    credential = CredentialFactory(
        organization=organization, environment="production", app_id="A249D7040CB1E6190002728F"
    )
    assert topic_for(credential) == "live/level13/A249D7040CB1E6190002728F"
    with pytest.raises(StreamSetupError, match="client certificate"):
        config_for(credential)
    with pytest.raises(CommandError, match="client certificate"):
        call_command("stream_consume", "--org", organization.slug)


def test_hm_credentials_connect_with_tls_to_the_hm_broker(organization, settings):
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-client")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    credential = CredentialFactory(
        organization=organization,
        environment="sandbox",
        app_id="48aa1779-91c2-468e-97e9-ab112efd53b9",
        mqtt_client_certificate=cert.public_bytes(serialization.Encoding.PEM).decode(),
        mqtt_client_key=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )
    credential.refresh_from_db()  # the key comes back decrypted from the encrypted field
    config = config_for(credential, client_id="cert-id")
    assert (config.host, config.port) == (settings.HM_MQTT_HOST, settings.HM_MQTT_PORT)
    assert config.client_id == "cert-id" and config.tls is not None
    # The SSL context loads the certificate and key (temporary files are gone afterwards).
    from telemetry.mqtt import tls_context

    assert tls_context(config.tls) is not None


def test_a_credential_without_application_id_cannot_stream(organization):
    for environment in ("simulator", "sandbox", "production"):
        credential = CredentialFactory(
            organization=organization, environment=environment, app_id=""
        )
        with pytest.raises(StreamSetupError, match="no valid High Mobility application id"):
            topic_for(credential)
        with pytest.raises(StreamSetupError, match="cannot tell this organization"):
            config_for(credential)
    wildcard = CredentialFactory(organization=organization, app_id="+")
    with pytest.raises(StreamSetupError):
        topic_for(wildcard)
    with pytest.raises(CommandError, match="application id"):
        call_command("stream_consume", "--org", organization.slug, "--credential", wildcard.name)


def test_a_simulator_credential_subscribes_to_its_own_application_only(organization, settings):
    credential = CredentialFactory(
        organization=organization, app_id="48aa1779-91c2-468e-97e9-ab112efd53b9"
    )
    config = config_for(credential)
    assert config.topic == "live/level13/48aa1779-91c2-468e-97e9-ab112efd53b9"
    assert config.tls is None


def test_the_demo_simulator_credential_can_stream(
    live_server, transactional_db, settings, monkeypatch
):
    from io import StringIO

    from clearance.models import Credential
    from simulator.models import SimulatedApp
    from simulator.publisher import topic_for as published_topic

    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-for-tests")
    settings.SITE_URL = live_server.url
    settings.HM_SIMULATOR_BASE_URL = f"{live_server.url}/simulator"
    call_command("demo", stdout=StringIO())
    credential = Credential.objects.get(name="Simulator")
    app = SimulatedApp.objects.get(client_id=credential.client_id)
    assert credential.app_id == str(app.app_id)
    # The consumer listens exactly where the simulator publishes.
    assert config_for(credential).topic == published_topic(str(app.app_id))
