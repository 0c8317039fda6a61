"""Start-up validation of FIELD_ENCRYPTION_KEYS and LOG_LEVEL, and the deploy checks on
DJANGO_SECRET_KEY: each failure names the variable and never prints a secret."""

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from fleetportal import env

ROOT = Path(__file__).resolve().parents[2]


def _manage(args: list[str], extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "fleetportal.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **extra_env},
        capture_output=True,
        text=True,
        check=False,
    )


# --- FIELD_ENCRYPTION_KEYS ------------------------------------------------------------------------


def test_fernet_keys_are_returned_when_valid(monkeypatch):
    keys = [Fernet.generate_key().decode() for _ in range(2)]
    monkeypatch.setenv("X_KEYS", " , ".join(keys))
    assert env.env_fernet_keys("X_KEYS") == keys


def test_unset_fernet_keys_are_empty(monkeypatch):
    monkeypatch.delenv("X_KEYS", raising=False)
    assert env.env_fernet_keys("X_KEYS") == []


@pytest.mark.parametrize(
    ("value", "which"),
    [
        ("notakey", "the key"),
        ("c2hvcnQ=", "the key"),  # valid base64, but 5 bytes
        (f"{Fernet.generate_key().decode()},bad-second-key", "key 2 of 2"),
        ("schlüssel-" + "x" * 34, "the key"),  # not ASCII
    ],
)
def test_a_malformed_fernet_key_names_the_variable_not_the_key(monkeypatch, value, which):
    monkeypatch.setenv("X_KEYS", value)
    with pytest.raises(ImproperlyConfigured) as caught:
        env.env_fernet_keys("X_KEYS")
    message = str(caught.value)
    assert message.startswith(f"X_KEYS: {which} is not a Fernet key")
    for part in value.split(","):
        assert part not in message
    assert caught.value.__suppress_context__  # the cryptography error (and its text) is dropped


def test_manage_py_check_stops_on_a_malformed_encryption_key():
    result = _manage(
        ["check"], {"DJANGO_DEBUG": "1", "FIELD_ENCRYPTION_KEYS": "notakey-secret-material"}
    )
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS: the key is not a Fernet key" in result.stderr
    assert "notakey-secret-material" not in result.stderr + result.stdout


# --- LOG_LEVEL ------------------------------------------------------------------------------------


def test_log_level_names_are_accepted_in_any_case(monkeypatch):
    monkeypatch.setenv("X_LEVEL", "warning")
    assert env.env_choice("X_LEVEL", "INFO", ("INFO", "WARNING")) == "WARNING"
    monkeypatch.setenv("X_LEVEL", "")
    assert env.env_choice("X_LEVEL", "INFO", ("INFO", "WARNING")) == "INFO"


def test_manage_py_check_stops_on_an_unknown_log_level():
    result = _manage(["check"], {"DJANGO_DEBUG": "1", "LOG_LEVEL": "loud"})
    assert result.returncode != 0
    assert "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'loud'." in (
        result.stderr
    )
    assert "Unable to configure root logger" not in result.stderr


# --- DJANGO_SECRET_KEY deploy checks --------------------------------------------------------------


def _deploy_errors(settings, secret_key: str) -> str:
    settings.SECRET_KEY = secret_key
    with pytest.raises(SystemCheckError) as caught:
        call_command("check", deploy=True, tags=["security"], fail_level="ERROR")
    return str(caught.value)


def test_deploy_check_rejects_the_env_example_placeholder(settings):
    placeholder = "change-me-to-a-long-random-value-" + "x" * 40  # long enough otherwise
    errors = _deploy_errors(settings, placeholder)
    assert "fleetportal.E002" in errors
    assert "DJANGO_SECRET_KEY is still the placeholder from .env.example." in errors
    assert placeholder not in errors


def test_deploy_check_rejects_a_short_key(settings):
    short = "k" * 20 + "0123456789abcdefghi"  # 39 characters
    errors = _deploy_errors(settings, short)
    assert "fleetportal.E003" in errors
    assert "DJANGO_SECRET_KEY is 39 characters long; it must be at least 50" in errors
    assert short not in errors


def test_deploy_check_still_rejects_the_development_default(settings):
    errors = _deploy_errors(settings, "development-only-secret-key-never-use-in-production")
    assert "fleetportal.E001" in errors


def test_deploy_check_accepts_a_long_random_key(settings):
    from fleetportal.checks import _secret_key_problems

    assert _secret_key_problems("Zq8" + "a1B2c3D4e5" * 5) == []


def test_manage_py_check_deploy_fails_on_the_env_example_key():
    key = Fernet.generate_key().decode()
    result = _manage(
        ["check", "--deploy"],
        {
            "DJANGO_SECRET_KEY": "change-me-to-a-long-random-value",
            "FIELD_ENCRYPTION_KEYS": key,
            "DJANGO_ALLOWED_HOSTS": "fleet.example.com",
            "SITE_URL": "https://fleet.example.com",
            "SIMULATOR_ENABLED": "0",
        },
    )
    assert result.returncode != 0
    assert "fleetportal.E002" in result.stderr
