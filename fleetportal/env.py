"""Typed access to environment variables.

Settings are read from the environment only. A malformed value stops start-up with a message that
names the variable and says what was expected, instead of silently falling back to a default.
"""

import os
from email.utils import parseaddr
from pathlib import Path
from typing import Any, overload
from urllib.parse import parse_qs, unquote, urlsplit

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email

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


_EMAIL_SCHEMES = "smtp://, smtps://, console://, locmem://, file:// or dummy://"
_SMTP_QUERY_FLAGS = {"tls": "use_tls", "ssl": "use_ssl"}


def env_email(name: str, default: str = "console://") -> dict[str, Any]:
    """An email URL as a Django MAILERS entry ({"BACKEND": ..., "OPTIONS": {...}}).

    smtp://user:password@host:587/?tls=1 (STARTTLS), smtps://user:password@host:465 (TLS from the
    start; same as ?ssl=1), optional &timeout=seconds (default 10); console:// prints messages to
    the process's output, locmem:// keeps them in memory (tests), file:///folder writes one file
    per message, dummy:// drops them. Messages about a malformed URL never quote the URL: it may
    carry the mail server's password.
    """
    value = env_str(name, default)
    try:
        parts = urlsplit(value)
        scheme = parts.scheme.lower()
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} is not a URL; it must start with {_EMAIL_SCHEMES}."
        ) from None
    simple = {
        "console": "django.core.mail.backends.console.EmailBackend",
        "locmem": "django.core.mail.backends.locmem.EmailBackend",
        "dummy": "django.core.mail.backends.dummy.EmailBackend",
    }
    if scheme in simple:
        return {"BACKEND": simple[scheme], "OPTIONS": {}}
    if scheme == "file":
        if parts.netloc or not parts.path or parts.path == "/":
            raise ImproperlyConfigured(
                f"{name} must name a folder for file://, e.g. file:///var/lib/fleetportal/mail."
            )
        return {
            "BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "OPTIONS": {"file_path": unquote(parts.path)},
        }
    if scheme not in ("smtp", "smtps"):
        raise ImproperlyConfigured(f"{name} must start with {_EMAIL_SCHEMES}.")
    return {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": _smtp_options(name, parts),
    }


def _smtp_options(name: str, parts) -> dict[str, Any]:
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}: the port must be a number between 1 and 65535. Characters such as / @ : "
            "in the user name or password must be percent-encoded (/ as %2F, @ as %40)."
        ) from None
    if not parts.hostname:
        raise ImproperlyConfigured(
            f"{name} must name the mail server, e.g. smtp://user:password@mail.example.com:587/?tls=1."
        )
    options: dict[str, Any] = {"host": parts.hostname, "timeout": 10}
    if port is not None:
        options["port"] = port
    if parts.username is not None:
        options["username"] = unquote(parts.username)
        options["password"] = unquote(parts.password or "")
    if parts.scheme.lower() == "smtps":
        options["use_ssl"] = True
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        raw = values[-1].strip().lower()
        if key in _SMTP_QUERY_FLAGS:
            if raw not in _TRUE | _FALSE or not raw:
                raise ImproperlyConfigured(f"{name}: {key}= must be 1 or 0, got {raw!r}.")
            options[_SMTP_QUERY_FLAGS[key]] = raw in _TRUE
        elif key == "timeout":
            try:
                options["timeout"] = float(raw)
            except ValueError:
                raise ImproperlyConfigured(
                    f"{name}: timeout= must be a number of seconds, got {raw!r}."
                ) from None
        else:
            raise ImproperlyConfigured(
                f"{name}: unknown option {key!r}; use tls=1, ssl=1 or timeout=seconds."
            )
    if options.get("use_tls") and options.get("use_ssl"):
        raise ImproperlyConfigured(
            f"{name}: choose either tls=1 (STARTTLS, usually port 587) or ssl=1 / smtps:// "
            "(usually port 465), not both."
        )
    return options


def env_email_address(name: str, site_url: str) -> str:
    """A sender address such as `FleetPortal <noreply@fleet.example.com>` or a bare address;
    by default noreply@ the site's host name (localhost when that is an IP address)."""
    host = urlsplit(site_url).hostname or ""
    if "." not in host or host.replace(".", "").isdigit() or ":" in host:
        host = "localhost"
    value = env_str(name, f"FleetPortal <noreply@{host}>")
    _display, address = parseaddr(value)
    try:
        validate_email(address)
    except ValidationError:
        raise ImproperlyConfigured(
            f"{name} must be an email address, optionally with a name: "
            f"FleetPortal <noreply@fleet.example.com>; got {value!r}."
        ) from None
    return value
