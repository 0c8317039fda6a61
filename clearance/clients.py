"""From a stored Credential to a ready HM client: base URL, auth, the shared token.

The base URL comes from settings only, never from user input; the token is shared through the
cache (``clearance.token_store``) under a key that changes with every secret, so a replaced
secret never reuses a token issued for the old one. Secrets never appear in messages.
"""

from __future__ import annotations

import hashlib
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache as default_cache

from clearance.hm import (
    ClientSecretAuth,
    HMAuth,
    HMClient,
    PrivateKeyAuth,
    ServiceAccountAuth,
    TokenStore,
)
from clearance.models import Credential
from clearance.token_store import CacheTokenStore
from durable import shutdown

TOKEN_KEY_PREFIX = "hm-token"


class CredentialIncomplete(ValueError):
    """The credential lacks something its auth mode needs (message in words, no secrets)."""


def base_url_for(credential: Credential) -> str:
    """The HM base URL of the credential's environment, from settings (never from the user)."""
    urls: dict[str, str] = {
        Credential.Environment.PRODUCTION: settings.HM_PRODUCTION_BASE_URL,
        Credential.Environment.SANDBOX: settings.HM_SANDBOX_BASE_URL,
        Credential.Environment.SIMULATOR: settings.HM_SIMULATOR_BASE_URL,
    }
    try:
        return urls[credential.environment].rstrip("/")
    except KeyError:
        raise CredentialIncomplete(
            f"Unknown environment {credential.environment!r} on credential {credential.name!r}."
        ) from None


def auth_for(credential: Credential) -> HMAuth:
    """The auth object for the credential's mode; CredentialIncomplete says what is missing."""
    mode = credential.auth_mode
    missing: list[str] = []

    def need(value: str, label: str) -> str:
        if not value:
            missing.append(label)
        return value

    if mode == Credential.AuthMode.CLIENT_SECRET:
        client_id = need(credential.client_id, "the OAuth client id")
        secret = need(credential.client_secret, "the client secret")
        _raise_missing(credential, missing)
        return ClientSecretAuth(client_id=client_id, client_secret=secret)
    if mode == Credential.AuthMode.PRIVATE_KEY:
        client_id = need(credential.client_id, "the OAuth client id")
        key_id = need(credential.private_key_id, "the private key id")
        pem = need(credential.private_key, "the private key")
        _raise_missing(credential, missing)
        try:
            return PrivateKeyAuth(client_id=client_id, private_key_pem=pem, private_key_id=key_id)
        except ValueError as exc:
            raise CredentialIncomplete(f"{exc} Upload the key again.") from None
    if mode == Credential.AuthMode.SERVICE_ACCOUNT:
        key_id = need(credential.service_account_key_id, "the service account API key id")
        pem = need(credential.private_key, "the private key")
        _raise_missing(credential, missing)
        try:
            return ServiceAccountAuth(
                api_key_id=key_id,
                private_key_pem=pem,
                client_id=credential.client_id or None,
                client_secret=credential.client_secret or None,
            )
        except ValueError as exc:
            raise CredentialIncomplete(f"{exc} Upload the key again.") from None
    raise CredentialIncomplete(f"Unknown authentication mode {mode!r}.")


def _raise_missing(credential: Credential, missing: list[str]) -> None:
    if missing:
        raise CredentialIncomplete(
            f"Credential {credential.name!r} is missing {', '.join(missing)}."
        )


def secret_version(credential: Credential, auth: HMAuth | None = None) -> str:
    """Changes whenever the base URL, the identity or any secret of the credential changes.

    A hash of the auth identity (itself holding only a fingerprint of the secret), so a replaced
    secret gets a new cache key and the token issued for the old one is never used again.
    """
    auth = auth or auth_for(credential)
    material = f"{base_url_for(credential)}\x00{auth.cache_identity()}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def token_key_for(credential: Credential, auth: HMAuth | None = None) -> str:
    return f"{TOKEN_KEY_PREFIX}:{credential.public_id}:{secret_version(credential, auth)}"


def _now() -> datetime:
    """The clock our HM clients sign assertions with (tests shift it to provoke clock skew)."""
    return datetime.now(UTC)


def hm_client_for(
    credential: Credential,
    *,
    token_store: TokenStore | None = None,
    session: Any = None,
) -> HMClient:
    """A ready ``HMClient`` for the credential; its app token is shared through the cache."""
    auth = auth_for(credential)
    return HMClient(
        base_url_for(credential),
        auth,
        token_store=token_store if token_store is not None else CacheTokenStore(),
        session=session,
        timeout=(settings.HM_CONNECT_TIMEOUT, settings.HM_READ_TIMEOUT),
        token_key=token_key_for(credential, auth),
        clock=lambda: _now(),
        # A warm shutdown of the worker cuts a call in flight short (an unclear answer).
        interruptible=shutdown.interruptible,
    )


def forget_token(credential: Credential) -> None:
    """Drop the cached app token (e.g. after HM refused it for good)."""
    with suppress(CredentialIncomplete):
        default_cache.delete(token_key_for(credential))
