"""Writes for credentials: parse key material, create, replace secrets, record connection checks.

Shared by the owner pages, the admin and ``manage.py credential_add`` so every path validates the
same way. Messages are in words and never contain a secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from clearance.hm import load_ec_private_key
from clearance.models import Credential
from organizations.models import Organization
from untrusted import UntrustedJsonError, parse_json

MAX_KEY_FILE_BYTES = 64 * 1024

# Secret field -> its "set on" timestamp field.
SECRET_FIELDS = {
    "client_secret": "client_secret_set_at",
    "private_key": "private_key_set_at",
    "webhook_secret": "webhook_secret_set_at",
    "mqtt_client_key": "mqtt_client_key_set_at",
}


@dataclass(frozen=True)
class KeyMaterial:
    pem: str
    key_id: str = ""  # from the console's JSON file; empty for a bare PEM


def parse_private_key(text: str | bytes) -> KeyMaterial:
    """The console's private-key JSON file ({"private_key", "id"}) or a PEM, validated as P-256."""
    if isinstance(text, bytes):
        if len(text) > MAX_KEY_FILE_BYTES:
            raise ValidationError("The key file is too large to be a private key file.")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError(
                "The key file is not text. Upload the JSON file from the High Mobility console "
                "or a PEM file."
            ) from None
    text = text.strip()
    if not text:
        raise ValidationError("The key is empty.")
    key_id = ""
    if text.startswith("{"):
        try:
            data = parse_json(text)
        except UntrustedJsonError as exc:
            raise ValidationError(
                f"The key file looks like JSON but cannot be read. {exc} Download it again from "
                "the High Mobility console."
            ) from None
        if not isinstance(data, dict):
            raise ValidationError("The key file must be a JSON object.")
        missing = [name for name in ("private_key", "id") if not data.get(name)]
        if missing:
            fields = " and ".join(f'"{name}"' for name in missing)
            raise ValidationError(
                f"The key file is missing {fields}. Use the JSON file the High Mobility console "
                "downloads when you create a private key."
            )
        text = str(data["private_key"]).strip()
        key_id = str(data["id"]).strip()
    if "-----BEGIN" not in text:
        raise ValidationError(
            "This is not a PEM private key (it should start with -----BEGIN PRIVATE KEY-----)."
        )
    if "ENCRYPTED" in text.split("\n", 1)[0]:
        raise ValidationError("The private key is protected by a password; upload it unencrypted.")
    try:
        load_ec_private_key(text)
    except ValueError as exc:
        message = str(exc)
        if "P-256" in message:
            message = (
                "The private key is not an EC P-256 key. High Mobility keys are P-256 (ES256); "
                "create one in the console."
            )
        else:
            message = "The private key cannot be read: the PEM is damaged or incomplete."
        raise ValidationError(message) from None
    return KeyMaterial(pem=text + "\n", key_id=key_id)


def set_secret(credential: Credential, name: str, value: str) -> list[str]:
    """Replace one secret on the instance (not saved); returns the changed field names."""
    if name not in SECRET_FIELDS:
        raise ValueError(f"{name} is not a secret field")
    setattr(credential, name, value)
    setattr(credential, SECRET_FIELDS[name], timezone.now() if value else None)
    return [name, SECRET_FIELDS[name]]


def required_fields_missing(credential: Credential) -> dict[str, str]:
    """What the credential's auth mode still needs, as {field: message}."""
    errors: dict[str, str] = {}
    mode = credential.auth_mode
    needs_client_id = mode in (Credential.AuthMode.CLIENT_SECRET, Credential.AuthMode.PRIVATE_KEY)
    if needs_client_id and not credential.client_id:
        errors["client_id"] = "Enter the OAuth client id from the High Mobility console."
    if mode == Credential.AuthMode.CLIENT_SECRET and not credential.client_secret:
        errors["client_secret"] = "Enter the client secret from the High Mobility console."
    if mode == Credential.AuthMode.PRIVATE_KEY:
        if not credential.private_key:
            errors["private_key"] = "Upload the private-key JSON file or paste the PEM key."
        if not credential.private_key_id:
            errors["private_key_id"] = (
                "Enter the private key id (the JSON file from the console contains it)."
            )
    if mode == Credential.AuthMode.SERVICE_ACCOUNT:
        if not credential.private_key:
            errors["private_key"] = "Upload the service account private key."
        if not credential.service_account_key_id:
            errors["service_account_key_id"] = "Enter the service account API key id."
    return errors


def credential_create(
    *,
    organization: Organization,
    name: str,
    environment: str,
    auth_mode: str,
    client_id: str = "",
    private_key_id: str = "",
    service_account_key_id: str = "",
    app_id: str = "",
    secrets: dict[str, str] | None = None,
) -> Credential:
    """Create a complete credential; ValidationError (in words) when something is missing."""
    credential = Credential(
        organization=organization,
        name=name.strip(),
        environment=environment,
        auth_mode=auth_mode,
        client_id=client_id.strip(),
        private_key_id=private_key_id.strip(),
        service_account_key_id=service_account_key_id.strip(),
        app_id=app_id.strip(),
    )
    for secret, value in (secrets or {}).items():
        if value:
            set_secret(credential, secret, value)
    missing = required_fields_missing(credential)
    if missing:
        raise ValidationError(missing)
    if Credential.objects.filter(organization=organization, name=credential.name).exists():
        raise ValidationError(
            {"name": f"{organization.name} already has a credential named {credential.name!r}."}
        )
    with transaction.atomic():
        credential.save()
    return credential


def record_check(credential: Credential, *, ok: bool | None, message: str) -> None:
    """Store a connection check result (ok=None: a check is running)."""
    credential.last_check_at = timezone.now()
    credential.last_check_ok = ok
    credential.last_check_message = message
    Credential.objects.filter(pk=credential.pk).update(
        last_check_at=credential.last_check_at,
        last_check_ok=ok,
        last_check_message=message,
    )
