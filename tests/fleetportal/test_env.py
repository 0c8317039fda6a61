import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from fleetportal import env


@pytest.mark.parametrize(
    ("func", "name", "value", "args"),
    [
        (env.env_bool, "X_BOOL", "maybe", ()),
        (env.env_int, "X_INT", "12a", (1,)),
        (env.env_float, "X_FLOAT", "fast", (1.0,)),
        (env.env_database, "X_DB", "nonsense://", ("/tmp/x.sqlite3",)),
    ],
)
def test_malformed_values_fail_loudly_with_the_variable_name(monkeypatch, func, name, value, args):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        func(name, *args)


def test_int_below_minimum_is_refused(monkeypatch):
    monkeypatch.setenv("X_INT", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env.env_int("X_INT", 5, minimum=1)


def test_well_formed_values(monkeypatch):
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    monkeypatch.setenv("X_DB", "postgres://u:p@db.example:5433/fleet")
    assert env.env_bool("X_BOOL") is True
    assert env.env_list("X_LIST") == ["a", "b", "c"]
    db = env.env_database("X_DB", "/tmp/unused")
    assert db["NAME"] == "fleet" and db["PORT"] == 5433


def _load_settings(extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "fleetportal.settings"}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**base, **extra_env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_production_refuses_to_start_without_secret_key():
    result = _load_settings({})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_production_refuses_to_start_without_encryption_keys():
    result = _load_settings({"DJANGO_SECRET_KEY": "x" * 50})
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS is not set" in result.stderr


def test_malformed_setting_stops_start_up():
    result = _load_settings({"DJANGO_DEBUG": "perhaps"})
    assert result.returncode != 0
    assert "DJANGO_DEBUG must be a boolean" in result.stderr


def test_debug_starts_with_development_defaults():
    result = _load_settings({"DJANGO_DEBUG": "1"})
    assert result.returncode == 0, result.stderr
