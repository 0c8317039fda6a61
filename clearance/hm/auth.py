"""The three ways a FleetPortal credential authenticates with HM (PROTOCOL.md §1).

* ``ClientSecretAuth``: OAuth2 client_credentials with client id + secret.
* ``PrivateKeyAuth``: OAuth2 client_credentials with an ES256 JWT client assertion
  (``iss`` = private-key id, ``aud`` = ``<base>/v1``, ``iat``, ``jti``, ``ver`` 2).
* ``ServiceAccountAuth``: legacy service account, an ES256 JWT exchanged at
  ``POST /v1/auth_tokens``.

Each knows how to build its token request and read the answer; the client does the HTTP.
Secrets never appear in ``repr``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .types import Token, parse_hm_datetime

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ACCESS_TOKENS_PATH = "/v1/access_tokens"
AUTH_TOKENS_PATH = "/v1/auth_tokens"
# What HM documents for client_credentials tokens when expires_in is missing.
DEFAULT_TOKEN_LIFETIME = 300


def audience(base_url: str) -> str:
    """``aud`` claim: the environment base URL plus ``/v1``, no trailing slash."""
    return base_url.rstrip("/") + "/v1"


def load_ec_private_key(pem: str | bytes) -> ec.EllipticCurvePrivateKey:
    """Load an EC P-256 private key (PKCS#8 or SEC1 PEM); raise ValueError in plain words."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data.strip() + b"\n", password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("The private key is not a readable PEM key.") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("The private key must be an EC P-256 key (ES256).")
    return key


def sign_es256(claims: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "JWT"})


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:24]


def token_from_oauth_response(body: Mapping[str, Any], now: datetime) -> Token:
    if not isinstance(body, Mapping) or not body.get("access_token"):
        raise ValueError("token answer without access_token")
    try:
        expires_in = int(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
    except (TypeError, ValueError):
        expires_in = DEFAULT_TOKEN_LIFETIME
    return Token(
        access_token=str(body["access_token"]),
        expires_at=now + timedelta(seconds=expires_in),
        scope=str(body.get("scope") or ""),
    )


class HMAuth(Protocol):
    kind: str

    def cache_identity(self) -> str: ...

    def token_request(self, base_url: str, now: datetime) -> tuple[str, dict[str, Any]]: ...

    def parse_token(self, body: Mapping[str, Any], now: datetime) -> Token: ...

    def oauth_client_fields(self, base_url: str, now: datetime) -> dict[str, str]: ...


@dataclass(frozen=True)
class ClientSecretAuth:
    client_id: str
    client_secret: str = field(repr=False)
    kind = "client_secret"

    def cache_identity(self) -> str:
        return f"{self.kind}:{self.client_id}:{_fingerprint(self.client_secret)}"

    def token_request(self, base_url: str, now: datetime) -> tuple[str, dict[str, Any]]:
        return ACCESS_TOKENS_PATH, {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }

    def parse_token(self, body: Mapping[str, Any], now: datetime) -> Token:
        return token_from_oauth_response(body, now)

    def oauth_client_fields(self, base_url: str, now: datetime) -> dict[str, str]:
        return {"client_id": self.client_id, "client_secret": self.client_secret}


@dataclass(frozen=True)
class PrivateKeyAuth:
    client_id: str
    private_key_pem: str = field(repr=False)
    private_key_id: str
    kind = "private_key"

    def __post_init__(self) -> None:
        load_ec_private_key(self.private_key_pem)  # fail early, in words

    @classmethod
    def from_console_json(
        cls, client_id: str, json_text_or_dict: str | Mapping[str, Any]
    ) -> PrivateKeyAuth:
        """Build from the JSON key file the HM console downloads (``private_key`` + ``id``)."""
        if isinstance(json_text_or_dict, Mapping):
            data = json_text_or_dict
        else:
            try:
                data = json.loads(json_text_or_dict)
            except (TypeError, ValueError, RecursionError) as exc:  # deep nesting: RecursionError
                raise ValueError("The key file is not valid JSON.") from exc
        if not isinstance(data, Mapping) or not data.get("private_key") or not data.get("id"):
            raise ValueError('The key file must contain "private_key" and "id".')
        return cls(
            client_id=client_id,
            private_key_pem=str(data["private_key"]),
            private_key_id=str(data["id"]),
        )

    def cache_identity(self) -> str:
        secret = _fingerprint(self.private_key_pem)
        return f"{self.kind}:{self.client_id}:{self.private_key_id}:{secret}"

    def client_assertion(self, base_url: str, now: datetime) -> str:
        claims = {
            "iss": self.private_key_id,
            "aud": audience(base_url),
            "iat": int(now.timestamp()),
            "jti": str(uuid.uuid4()),
            "ver": 2,
        }
        return sign_es256(claims, load_ec_private_key(self.private_key_pem))

    def token_request(self, base_url: str, now: datetime) -> tuple[str, dict[str, Any]]:
        return ACCESS_TOKENS_PATH, {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(base_url, now),
        }

    def parse_token(self, body: Mapping[str, Any], now: datetime) -> Token:
        return token_from_oauth_response(body, now)

    def oauth_client_fields(self, base_url: str, now: datetime) -> dict[str, str]:
        # The spec's revoke/refresh bodies want client_secret; a private-key app authenticates with
        # an assertion instead (listed in tests/contract/deviations.py).
        return {
            "client_id": self.client_id,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(base_url, now),
        }


@dataclass(frozen=True)
class ServiceAccountAuth:
    """Deprecated service-account API key. The JWT is exchanged, never sent as the Bearer."""

    api_key_id: str
    private_key_pem: str = field(repr=False)
    # Refresh/revoke of legacy per-vehicle tokens go through the OAuth endpoint, which needs an
    # OAuth client; optional because most service-account users never call them.
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    kind = "service_account"

    def __post_init__(self) -> None:
        load_ec_private_key(self.private_key_pem)

    def cache_identity(self) -> str:
        return f"{self.kind}:{self.api_key_id}:{_fingerprint(self.private_key_pem)}"

    def assertion(self, base_url: str, now: datetime) -> str:
        claims = {
            "iss": self.api_key_id,
            "aud": audience(base_url),
            "iat": int(now.timestamp()),
            "jti": str(uuid.uuid4()),
            "ver": 2,
        }
        return sign_es256(claims, load_ec_private_key(self.private_key_pem))

    def token_request(self, base_url: str, now: datetime) -> tuple[str, dict[str, Any]]:
        return AUTH_TOKENS_PATH, {"assertion": self.assertion(base_url, now)}

    def parse_token(self, body: Mapping[str, Any], now: datetime) -> Token:
        if not isinstance(body, Mapping):
            raise ValueError("auth token answer is not an object")
        if body.get("auth_token"):
            valid_until = parse_hm_datetime(body.get("valid_until"))
            return Token(
                access_token=str(body["auth_token"]),
                expires_at=valid_until or now + timedelta(seconds=DEFAULT_TOKEN_LIFETIME),
                scope=str(body.get("scope") or ""),
            )
        # The spec's own example shows OAuth-style fields (PROTOCOL.md §8.4): accept those too.
        return token_from_oauth_response(body, now)

    def oauth_client_fields(self, base_url: str, now: datetime) -> dict[str, str]:
        if not self.client_id or not self.client_secret:
            raise ValueError(
                "Refreshing or revoking vehicle tokens needs the OAuth client id and secret "
                "of this application."
            )
        return {"client_id": self.client_id, "client_secret": self.client_secret}
