"""credential_add, hm_check (against the simulator over real HTTP) and rotate_encryption_keys."""

import logging
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from clearance import clients
from clearance.hm import ClearanceRequest
from clearance.models import Credential
from simulator import clock as sim_clock
from simulator import services as sim
from simulator.models import AppKey, SimulatedApp
from tests.clearance.credential_helpers import console_json, p256_pem, raw_column, rsa_pem
from tests.factories import ClearanceFactory, OrganizationFactory, VehicleFactory


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- credential_add -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_credential_add_client_secret(tmp_path, settings):
    settings.SITE_URL = "https://fleet.example.com"
    org = OrganizationFactory(slug="acme")
    out = run(
        "credential_add",
        "--org=acme",
        "--name=Prod",
        "--environment=production",
        "--client-id=cid-1",
        f"--client-secret-file={write(tmp_path, 'secret', 'the-secret-value\n')}",
        f"--webhook-secret-file={write(tmp_path, 'wh', 'hook-secret\n')}",
    )
    credential = Credential.objects.get(organization=org, name="Prod")
    assert credential.auth_mode == "client_secret"
    assert credential.client_secret == "the-secret-value"  # trailing newline stripped
    assert credential.webhook_secret == "hook-secret"
    assert credential.client_secret_set_at and credential.webhook_secret_set_at
    assert "the-secret-value" not in raw_column(Credential, credential.pk, "client_secret")
    assert f"https://fleet.example.com/webhooks/high-mobility/{credential.public_id}/" in out
    assert "the-secret-value" not in out and "hook-secret" not in out


@pytest.mark.django_db
def test_credential_add_private_key_from_console_json(tmp_path):
    OrganizationFactory(slug="acme")
    pem = p256_pem()
    run(
        "credential_add",
        "--org=acme",
        "--name=Keyed",
        "--environment=sandbox",
        "--client-id=cid-2",
        f"--private-key-file={write(tmp_path, 'key.json', console_json(pem, 'kid-7'))}",
    )
    credential = Credential.objects.get(name="Keyed")
    assert credential.auth_mode == "private_key"
    assert credential.private_key_id == "kid-7"
    assert credential.private_key.strip() == pem.strip()


@pytest.mark.django_db
def test_credential_add_private_key_pem_needs_an_id(tmp_path):
    OrganizationFactory(slug="acme")
    key_file = write(tmp_path, "key.pem", p256_pem())
    args = ["credential_add", "--org=acme", "--name=K", "--environment=sandbox", "--client-id=c"]
    with pytest.raises(CommandError, match="private key id"):
        run(*args, f"--private-key-file={key_file}")
    run(*args, f"--private-key-file={key_file}", "--private-key-id=kid-pem")
    assert Credential.objects.get(name="K").private_key_id == "kid-pem"


@pytest.mark.django_db
def test_credential_add_service_account(tmp_path):
    OrganizationFactory(slug="acme")
    run(
        "credential_add",
        "--org=acme",
        "--name=Legacy",
        "--environment=sandbox",
        "--service-account-key-id=sa-1",
        f"--private-key-file={write(tmp_path, 'sa.pem', p256_pem())}",
    )
    credential = Credential.objects.get(name="Legacy")
    assert credential.auth_mode == "service_account"
    assert credential.service_account_key_id == "sa-1"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ([], "Say how to sign in"),
        (["--service-account-key-id=x"], "needs --private-key-file"),
        (["--private-key-file=KEY", "--client-secret-file=SECRET"], "not both"),
        (["--private-key-file=RSA", "--private-key-id=k"], "not an EC P-256 key"),
        (["--client-secret-file=/nonexistent/file"], "Cannot read the client secret file"),
        (["--client-secret-file=EMPTY"], "is empty"),
    ],
)
def test_credential_add_explains_mistakes(tmp_path, extra, words):
    OrganizationFactory(slug="acme")
    files = {
        "KEY": write(tmp_path, "k.json", console_json(p256_pem())),
        "SECRET": write(tmp_path, "s", "sec"),
        "RSA": write(tmp_path, "rsa.pem", rsa_pem()),
        "EMPTY": write(tmp_path, "empty", "\n"),
    }
    extra = [
        arg.split("=")[0] + "=" + files.get(arg.split("=")[1], arg.split("=")[1]) for arg in extra
    ]
    with pytest.raises(CommandError, match=words):
        run(
            "credential_add",
            "--org=acme",
            "--name=X",
            "--environment=sandbox",
            "--client-id=c",
            *extra,
        )
    assert not Credential.objects.exists()


@pytest.mark.django_db
def test_credential_add_unknown_org_and_duplicate_name(tmp_path):
    secret = write(tmp_path, "s", "sec")
    base = ["--name=X", "--environment=sandbox", "--client-id=c", f"--client-secret-file={secret}"]
    with pytest.raises(CommandError, match="No organization"):
        run("credential_add", "--org=nope", *base)
    OrganizationFactory(slug="acme")
    run("credential_add", "--org=acme", *base)
    with pytest.raises(CommandError, match="already has a credential named"):
        run("credential_add", "--org=acme", *base)


# --- hm_check against the simulator on a live server ----------------------------------------------


@pytest.fixture
def simulator(live_server, transactional_db, settings):
    settings.HM_SIMULATOR_BASE_URL = f"{live_server.url}/simulator"
    sim_clock.reset()
    app, secrets = sim.create_app("hm_check app", approval_delay_seconds=5)
    return app, secrets


def add_credential(tmp_path, secrets, mode, name="Sim"):
    OrganizationFactory(slug="acme") if not Credential.objects.exists() else None
    args = ["credential_add", "--org=acme", f"--name={name}", "--environment=simulator"]
    if mode == "client_secret":
        args += [
            f"--client-id={secrets.client_id}",
            f"--client-secret-file={write(tmp_path, 'secret', secrets.client_secret)}",
        ]
    elif mode == "private_key":
        args += [
            f"--client-id={secrets.client_id}",
            f"--private-key-file={write(tmp_path, 'key.json', secrets.console_key_json())}",
        ]
    else:
        args += [
            f"--service-account-key-id={secrets.service_account_key_id}",
            f"--private-key-file={write(tmp_path, 'sa.pem', secrets.service_account_private_key_pem)}",
        ]
    run(*args)
    return Credential.objects.get(name=name)


def check(name="Sim") -> str:
    return run("hm_check", "--org=acme", f"--credential={name}")


@pytest.mark.parametrize("mode", ["client_secret", "private_key", "service_account"])
def test_hm_check_succeeds_with_each_auth_mode(simulator, tmp_path, mode, caplog):
    caplog.set_level(logging.DEBUG)
    _app, secrets = simulator
    credential = add_credential(tmp_path, secrets, mode)
    client = clients.hm_client_for(credential)
    client.request_clearances(
        [
            ClearanceRequest("2HM00000000000002", "sandbox"),
            ClearanceRequest("2HM00000000000003", "sandbox"),
        ]
    )
    ClearanceFactory(
        vehicle=VehicleFactory(organization=credential.organization), credential=credential
    )
    out = check()
    assert "Token: OK, valid for" in out
    assert "Clearances at High Mobility: 2 (pending 2)" in out
    assert "Clearances in FleetPortal through this credential: 1" in out
    credential.refresh_from_db()
    assert credential.last_check_ok is True
    assert "HM knows 2 vehicles" in credential.last_check_message
    for secret in (secrets.client_secret, secrets.private_key_pem.splitlines()[1]):
        assert secret not in out and secret not in caplog.text


def test_hm_check_wrong_secret(simulator, tmp_path, caplog):
    _app, secrets = simulator
    credential = add_credential(tmp_path, secrets, "client_secret")
    credential.client_secret = "a-wrong-secret-value"
    credential.save()
    with pytest.raises(CommandError) as info:
        check()
    message = str(info.value)
    assert "(wrong_secret)" in message and "The client secret is wrong" in message
    assert "a-wrong-secret-value" not in message and "a-wrong-secret-value" not in caplog.text
    credential.refresh_from_db()
    assert credential.last_check_ok is False
    assert "client secret is wrong" in credential.last_check_message


def test_hm_check_expired_key(simulator, tmp_path):
    _app, secrets = simulator
    add_credential(tmp_path, secrets, "private_key")
    AppKey.objects.filter(key_id=secrets.private_key_id).update(
        expires_at=datetime.now(UTC) - timedelta(days=1)
    )
    with pytest.raises(CommandError, match=r"\(expired_key\).*private key has expired"):
        check()


@pytest.mark.parametrize("mode", ["private_key", "service_account"])
def test_hm_check_clock_skew(simulator, tmp_path, monkeypatch, mode):
    _app, secrets = simulator
    add_credential(tmp_path, secrets, mode)
    # This server's clock runs 10 minutes ahead: the signed iat is outside HM's window.
    monkeypatch.setattr(clients, "_now", lambda: datetime.now(UTC) + timedelta(minutes=10))
    with pytest.raises(CommandError, match=r"\(clock_skew\).*clock is probably wrong"):
        check()


def test_hm_check_unreachable_host(simulator, tmp_path, settings):
    import socket

    _app, secrets = simulator
    add_credential(tmp_path, secrets, "client_secret")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.HM_SIMULATOR_BASE_URL = f"http://127.0.0.1:{port}/simulator"
    with pytest.raises(CommandError, match=rf"\(unreachable\).*Could not reach 127.0.0.1:{port}"):
        check()


def test_hm_check_app_without_fleet_access(simulator, tmp_path):
    app, secrets = simulator
    add_credential(tmp_path, secrets, "client_secret")
    SimulatedApp.objects.filter(pk=app.pk).update(fleet_access=False)
    with pytest.raises(CommandError, match=r"\(forbidden\).*not allowed to use fleet clearance"):
        check()


@pytest.mark.django_db
def test_hm_check_unknown_credential_lists_the_known_ones():
    org = OrganizationFactory(slug="acme")
    Credential.objects.create(organization=org, name="Real", environment="sandbox")
    with pytest.raises(CommandError, match="Known: Real"):
        check("Nope")


@pytest.mark.django_db
def test_hm_check_incomplete_credential():
    org = OrganizationFactory(slug="acme")
    Credential.objects.create(organization=org, name="Half", environment="sandbox", client_id="c")
    with pytest.raises(CommandError, match=r"\(incomplete\).*missing the client secret"):
        check("Half")


# --- rotate_encryption_keys -----------------------------------------------------------------------


@pytest.mark.django_db
def test_rotation_re_encrypts_every_encrypted_field_with_the_first_key(settings):
    from clearance.models import VehicleToken

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    org = OrganizationFactory()
    credential = Credential.objects.create(
        organization=org,
        name="C",
        environment="sandbox",
        client_id="c",
        client_secret="client-secret-1",
        webhook_secret="webhook-secret-1",
    )
    clearance = ClearanceFactory(vehicle=VehicleFactory(organization=org), credential=credential)
    token = VehicleToken.objects.create(
        clearance=clearance,
        access_token="vehicle-access-1",
        refresh_token="vehicle-refresh-1",
        expires_at=datetime.now(UTC),
    )
    empty_private_key = raw_column(Credential, credential.pk, "private_key")
    before = raw_column(Credential, credential.pk, "client_secret")
    Fernet(old.encode()).decrypt(before.encode())

    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    out = run("rotate_encryption_keys", "--dry-run")
    assert "Would re-encrypt 4 value(s)" in out
    assert raw_column(Credential, credential.pk, "client_secret") == before

    out = run("rotate_encryption_keys")
    assert "clearance.Credential.client_secret: re-encrypted 1" in out
    assert "clearance.VehicleToken.refresh_token: re-encrypted 1" in out
    assert "Re-encrypted 4 value(s); 0 already used the first key." in out
    only_new = Fernet(new.encode())
    for model, pk, column, plain in [
        (Credential, credential.pk, "client_secret", "client-secret-1"),
        (Credential, credential.pk, "webhook_secret", "webhook-secret-1"),
        (VehicleToken, token.pk, "access_token", "vehicle-access-1"),
        (VehicleToken, token.pk, "refresh_token", "vehicle-refresh-1"),
    ]:
        assert only_new.decrypt(raw_column(model, pk, column).encode()).decode() == plain
    assert raw_column(Credential, credential.pk, "private_key") == empty_private_key == ""

    # The old key can go now.
    settings.FIELD_ENCRYPTION_KEYS = [new]
    credential.refresh_from_db()
    assert credential.client_secret == "client-secret-1"
    assert "Re-encrypted 0 value(s); 4 already used the first key." in run("rotate_encryption_keys")


@pytest.mark.django_db
def test_rotation_reports_values_no_key_can_read(settings):
    lost, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [lost]
    org = OrganizationFactory()
    Credential.objects.create(organization=org, name="C", environment="sandbox", client_secret="x")
    settings.FIELD_ENCRYPTION_KEYS = [new]
    with pytest.raises(CommandError, match="could not be decrypted with any key"):
        run("rotate_encryption_keys")
