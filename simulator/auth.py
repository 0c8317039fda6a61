"""How the simulator authenticates callers, the way HM does (PROTOCOL.md §1).

* client_credentials with a client secret (constant-time compare of SHA-256 digests),
* client_credentials with an ES256 client assertion checked against the registered public key,
* the legacy service-account JWT exchanged at ``/v1/auth_tokens``.

Assertions: ``aud`` must be this simulator's ``<base>/v1``, ``iat`` within ±30 s of the wall
clock, a ``jti`` is good for one use only. Tokens are opaque random strings; only their SHA-256
is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import time
from datetime import datetime, timedelta

import jwt
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from . import clock
from .errors import ApiError, TokenError, not_authorized
from .models import AppKey, IssuedToken, SimulatedApp, UsedJti

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
IAT_TOLERANCE_SECONDS = 30


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def hmac_sha256(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def hmac_sha1(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def secret_matches(app: SimulatedApp, secret: str) -> bool:
    return hmac.compare_digest(app.client_secret_hash, sha256(secret))


def new_token() -> str:
    return secrets.token_urlsafe(32)


def issue_token(
    app: SimulatedApp,
    kind: str,
    *,
    now: datetime,
    lifetime: int | None,
    vin: str = "",
    scope: str = "",
    authorization_id: str = "",
) -> tuple[str, IssuedToken]:
    raw = new_token()
    token = IssuedToken.objects.create(
        app=app,
        kind=kind,
        token_hash=sha256(raw),
        vin=vin,
        scope=scope,
        authorization_id=authorization_id,
        issued_at=now,
        expires_at=now + timedelta(seconds=lifetime) if lifetime else None,
    )
    return raw, token


# --- assertions ---------------------------------------------------------------------------------


def _claims_unverified(assertion: str) -> dict:
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    if header.get("alg") != "ES256":
        return {}
    return claims if isinstance(claims, dict) else {}


def verify_assertion(
    assertion: str,
    *,
    kind: str,
    audiences: set[str],
    app: SimulatedApp | None = None,
    versions: tuple[int, ...] = (2,),
) -> AppKey:
    """Check an ES256 assertion; return the key that signed it or raise ValueError(words)."""
    claims = _claims_unverified(assertion)
    key_id = claims.get("iss")
    if not key_id:
        raise ValueError("assertion is not an ES256 JWT with an iss claim")
    keys = AppKey.objects.select_related("app").filter(kind=kind, key_id=str(key_id))
    if app is not None:
        keys = keys.filter(app=app)
    key = keys.first()
    if key is None or key.revoked:
        raise ValueError("assertion is signed with an unknown key")
    if key.expires_at is not None and key.expires_at <= clock.now():
        raise ValueError("is signed with an expired key")
    try:
        verified = jwt.decode(
            assertion,
            key.public_key_pem,
            algorithms=["ES256"],
            audience=sorted(audiences),
            options={
                "require": ["iss", "aud", "iat", "jti"],
                "verify_iat": False,
                "verify_exp": False,
            },
        )
    except jwt.InvalidAudienceError as exc:
        raise ValueError("aud is invalid") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise ValueError(f"{exc.claim} can't be blank") from exc
    except jwt.PyJWTError as exc:
        raise ValueError("signature is invalid") from exc
    if verified.get("ver") not in versions:
        raise ValueError("ver is invalid")
    try:
        iat = float(verified["iat"])
    except (TypeError, ValueError) as exc:
        raise ValueError("iat is invalid") from exc
    if abs(clock.wall_now().timestamp() - iat) > IAT_TOLERANCE_SECONDS:
        raise ValueError("iat is outside the allowed time window")
    try:
        with transaction.atomic():
            UsedJti.objects.create(key_id=key.key_id, jti=str(verified["jti"]))
    except IntegrityError as exc:
        raise ValueError("jti has already been used") from exc
    return key


# --- token endpoint -----------------------------------------------------------------------------


def authenticate_oauth_client(body: dict, audiences: set[str]) -> SimulatedApp:
    """client_id + (client_secret | client_assertion). Raise TokenError like HM."""
    client_id = str(body.get("client_id") or "")
    has_secret = bool(body.get("client_secret"))
    has_assertion = bool(body.get("client_assertion"))
    if not client_id or not (has_secret or has_assertion):
        blanks = []
        if not client_id:
            blanks.append("client_id can't be blank")
        if not (has_secret or has_assertion):
            blanks.append("client_secret can't be blank")
        raise TokenError(", ".join(blanks))
    app = SimulatedApp.objects.filter(client_id=client_id).first()
    if app is None:
        raise TokenError("client_id is invalid")
    if has_assertion:
        if body.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise TokenError("client_assertion_type is invalid")
        try:
            verify_assertion(
                str(body["client_assertion"]),
                kind=AppKey.Kind.PRIVATE_KEY,
                audiences=audiences,
                app=app,
            )
        except ValueError as exc:
            raise TokenError(f"client_assertion {exc}") from exc
        return app
    if not secret_matches(app, str(body["client_secret"])):
        raise TokenError("client_secret is invalid")
    return app


def client_credentials(body: dict, audiences: set[str]) -> tuple[SimulatedApp, dict]:
    app = authenticate_oauth_client(body, audiences)
    apply_faults(app, token_endpoint=True)
    raw, token = issue_token(
        app,
        IssuedToken.Kind.APP,
        now=clock.now(),
        lifetime=app.token_lifetime_seconds,
        scope=app.scopes,
    )
    return app, {
        "access_token": raw,
        "expires_in": app.token_lifetime_seconds,
        "scope": token.scope,
        "token_type": "bearer",
    }


def exchange_service_account_jwt(assertion: str, audiences: set[str]) -> dict:
    try:
        key = verify_assertion(
            assertion, kind=AppKey.Kind.SERVICE_ACCOUNT, audiences=audiences, versions=(1, 2)
        )
    except ValueError as exc:
        raise not_authorized(
            f"Missing or invalid assertion. It must be a JWT signed with the service account key ({exc})"
        ) from exc
    app = key.app
    apply_faults(app, token_endpoint=True)
    now = clock.now()
    raw, token = issue_token(
        app,
        IssuedToken.Kind.AUTH_TOKEN,
        now=now,
        lifetime=app.token_lifetime_seconds,
        scope=app.scopes,
    )
    return {
        "auth_token": raw,
        "valid_from": _iso(now),
        "valid_until": _iso(token.expires_at),
    }


def _iso(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else ""


# --- bearer tokens ------------------------------------------------------------------------------


def authenticate_bearer(
    authorization: str, *, scope: str, request_id: bool = False
) -> SimulatedApp:
    """The app behind a Bearer token with ``scope``; 401 / 403 otherwise (HM's bodies)."""
    parts = (authorization or "").split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise not_authorized(request_id=request_id)
    token = (
        IssuedToken.objects.select_related("app")
        .filter(
            token_hash=sha256(parts[1].strip()),
            kind__in=[IssuedToken.Kind.APP, IssuedToken.Kind.AUTH_TOKEN],
        )
        .first()
    )
    if token is None or token.revoked_at is not None:
        raise not_authorized(
            "Invalid token" if request_id else "Invalid or revoked token", request_id=request_id
        )
    if token.expires_at is not None and token.expires_at <= clock.now():
        raise not_authorized("The access token has expired", request_id=request_id)
    if scope not in token.scope.split():
        raise ApiError(
            403,
            "Forbidden",
            f"The access token does not have the {scope} scope.",
            "Authorization",
            request_id=request_id,
        )
    return token.app


# --- fault knobs --------------------------------------------------------------------------------


def _knob(value: float | int | None, setting: str) -> float:
    return float(value if value is not None else getattr(settings, setting, 0) or 0)


def apply_faults(
    app: SimulatedApp, *, token_endpoint: bool = False, request_id: bool = False
) -> None:
    """Latency, forced next-N faults, random 429s and 500s, per app or from the environment."""
    latency = _knob(app.latency_ms, "SIMULATOR_LATENCY_MS")
    if latency > 0:
        time.sleep(latency / 1000)
    # Forced faults hit the API calls, not the token endpoint, so tests can aim them precisely.
    if not token_endpoint and app.next_fault_status and app.next_fault_count > 0:
        taken = SimulatedApp.objects.filter(pk=app.pk, next_fault_count__gt=0).update(
            next_fault_count=F("next_fault_count") - 1
        )
        if taken:
            raise fault_error(
                app, app.next_fault_status, token_endpoint=token_endpoint, request_id=request_id
            )
    if random.random() < _knob(app.rate_limit_rate, "SIMULATOR_RATE_LIMIT_RATE"):
        raise fault_error(app, 429, token_endpoint=token_endpoint, request_id=request_id)
    if random.random() < _knob(app.error_rate, "SIMULATOR_ERROR_RATE"):
        raise fault_error(app, 500, token_endpoint=token_endpoint, request_id=request_id)


def fault_error(app: SimulatedApp, status: int, *, token_endpoint: bool, request_id: bool):
    if status == 429:
        return ApiError(
            429,
            "Too many requests",
            f"retry after {app.retry_after_seconds}s",
            f"fleet-manager-api:{app.app_id}",
            request_id=request_id,
        )
    if token_endpoint and 400 <= status < 500:
        return TokenError("simulated failure", status=status)
    titles = {
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Timeout",
    }
    return ApiError(status, titles.get(status, "Error"), "Simulated failure", request_id=request_id)
