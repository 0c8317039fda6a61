"""Secrets encrypted at rest with MultiFernet (FIELD_ENCRYPTION_KEYS: the first key encrypts)."""

from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@cache
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must be comma-separated Fernet keys (32 url-safe base64 bytes)."
        ) from None


def fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with FIELD_ENCRYPTION_KEYS. "
            "Keep the old key in the list until `manage.py rotate_encryption_keys` has run."
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt a stored token with the first key."""
    return fernet().rotate(token.encode()).decode()


class EncryptedTextField(models.TextField[str, str]):
    """Stores Fernet ciphertext; Python code sees plain text. Empty stays empty."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value in (None, ""):
            return value
        return decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(value)


def encrypted_field_names(model: type[models.Model], *, through: str = "") -> list[str]:
    """`model`'s encrypted fields as lookups from another model (`through="clearance__credential"`),
    for `.defer()` in queries that never read them: a loaded secret is decrypted on load, so one
    that no configured key can decrypt would otherwise break every page listing its rows."""
    prefix = f"{through}__" if through else ""
    return [
        f"{prefix}{field.name}"
        for field in model._meta.get_fields()
        if isinstance(field, EncryptedTextField)
    ]
