"""Typed access to environment variables.

Settings are read from the environment only. A malformed value stops start-up with a message that
names the variable and says what was expected, instead of silently falling back to a default.
"""

import os
from pathlib import Path
from typing import Any, overload

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value is not None else None


@overload
def env_str(name: str, default: str) -> str: ...
@overload
def env_str(name: str, default: None = None) -> str | None: ...
def env_str(name: str, default: str | None = None) -> str | None:
    value = _raw(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be a boolean (1/0, true/false, yes/no), got {value!r}."
    )


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}.")
    return number


def env_float(
    name: str, default: float, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}.") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {number}.")
    return number


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = _raw(name)
    if value is None or value == "":
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices`, matched case-insensitively and returned as spelled in `choices`."""
    value = _raw(name)
    if value is None or value == "":
        return default
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}.")


def env_fernet_keys(name: str) -> list[str]:
    """Comma-separated Fernet keys (each 32 url-safe base64-encoded bytes); empty when unset.

    A malformed key is reported by its position only: the message never contains key material.
    """
    keys = env_list(name)
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:  # also binascii.Error; its text could quote the key, so it is dropped
            which = f"key {position} of {len(keys)}" if len(keys) > 1 else "the key"
            raise ImproperlyConfigured(
                f"{name}: {which} is not a Fernet key (44 characters of url-safe base64 "
                "encoding 32 bytes). Generate one with python -c 'from cryptography.fernet "
                "import Fernet; print(Fernet.generate_key().decode())'."
            ) from None
    return keys


def env_database(name: str, default_sqlite_path: Path) -> dict[str, Any]:
    """DATABASE_URL as a Django DATABASES entry; SQLite under var/ when unset."""
    value = env_str(name)
    if value is None:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(default_sqlite_path),
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    try:
        config = dj_database_url.parse(value, conn_max_age=0)
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(f"{name} is not a valid database URL: {exc}") from None
    if not config.get("ENGINE") or not config.get("NAME"):
        raise ImproperlyConfigured(
            f"{name} must name a database, e.g. postgres://user@host:5432/dbname."
        )
    if config["ENGINE"].endswith("sqlite3"):
        # Same as the embedded default: wait for locks and take the write lock up front, so
        # concurrent writers (web + worker threads) queue instead of failing "database is locked".
        config.setdefault("OPTIONS", {}).setdefault("timeout", 20)
        config["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
    return dict(config)
