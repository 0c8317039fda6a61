"""The simulated HM's legacy per-vehicle tokens (service-account mode): issue, refresh, revoke."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import transaction

from . import clock, services
from .auth import authenticate_oauth_client, issue_token, sha256
from .errors import ApiError, TokenError
from .models import IssuedToken, SimClearance, SimulatedApp

VEHICLE_TOKEN_LIFETIME = 3600
VEHICLE_TOKEN_SCOPE = "diagnostics.get.odometer"


def _vehicle_token_pair(app: SimulatedApp, vin: str, authorization_id: str, now: datetime) -> dict:
    access, _ = issue_token(
        app,
        IssuedToken.Kind.VEHICLE_ACCESS,
        now=now,
        lifetime=VEHICLE_TOKEN_LIFETIME,
        vin=vin,
        scope=VEHICLE_TOKEN_SCOPE,
        authorization_id=authorization_id,
    )
    refresh, _ = issue_token(
        app,
        IssuedToken.Kind.VEHICLE_REFRESH,
        now=now,
        lifetime=None,
        vin=vin,
        scope=VEHICLE_TOKEN_SCOPE,
        authorization_id=authorization_id,
    )
    return {
        "access_token": access,
        "authorization_id": authorization_id,
        "expires_in": VEHICLE_TOKEN_LIFETIME,
        "refresh_token": refresh,
        "scope": VEHICLE_TOKEN_SCOPE,
        "status": "approved",
        "token_type": "bearer",
    }


def issue_vehicle_token(app: SimulatedApp, body: dict) -> dict:
    vin = str(body.get("vin") or "").upper()
    if not vin:
        raise TokenError("vin can't be blank")
    clearance = SimClearance.objects.filter(app=app, vin=vin).first()
    now = clock.now()
    if clearance is None or services.current_entry(clearance, now).status != "approved":
        raise TokenError("vin is not approved for this fleet")
    return _vehicle_token_pair(app, vin, str(uuid.uuid4()), now)


def refresh_vehicle_token(body: dict, audiences: set[str]) -> dict:
    app = authenticate_oauth_client(body, audiences)
    raw = str(body.get("refresh_token") or "")
    if not raw:
        raise TokenError("refresh_token can't be blank")
    now = clock.now()
    with transaction.atomic():
        token = (
            IssuedToken.objects.select_for_update()
            .filter(app=app, kind=IssuedToken.Kind.VEHICLE_REFRESH, token_hash=sha256(raw))
            .first()
        )
        if token is None or token.revoked_at is not None:
            raise TokenError("refresh_token is invalid")
        clearance = SimClearance.objects.filter(app=app, vin=token.vin).first()
        if clearance is None or services.current_entry(clearance, now).status != "approved":
            raise TokenError("refresh_token is invalid")
        token.revoked_at = now  # rotation: a refresh token works once
        token.save(update_fields=["revoked_at"])
        return _vehicle_token_pair(app, token.vin, token.authorization_id, now)


def revoke_token(body: dict, audiences: set[str]) -> None:
    """DELETE /v1/access_tokens (RFC 7009: an unknown token is not an error)."""
    app = authenticate_oauth_client(body, audiences)
    raw = str(body.get("token") or "")
    if not raw:
        raise TokenError("token can't be blank")
    now = clock.now()
    token = IssuedToken.objects.filter(app=app, token_hash=sha256(raw)).first()
    if token is None or token.revoked_at is not None:
        return
    token.revoked_at = now
    token.save(update_fields=["revoked_at"])
    if token.kind == IssuedToken.Kind.VEHICLE_REFRESH and token.authorization_id:
        IssuedToken.objects.filter(
            app=app, authorization_id=token.authorization_id, revoked_at__isnull=True
        ).update(revoked_at=now)


def revoke_auth_token(raw: str) -> dict:
    token = IssuedToken.objects.filter(
        kind=IssuedToken.Kind.AUTH_TOKEN, token_hash=sha256(raw)
    ).first()
    if token is None:
        raise ApiError(404, "Not found", "auth_token not found", "auth_token")
    if token.revoked_at is None:
        token.revoked_at = clock.now()
        token.save(update_fields=["revoked_at"])
    return {
        "auth_token": raw,
        "valid_from": token.issued_at.isoformat().replace("+00:00", "Z"),
        "valid_until": token.revoked_at.isoformat().replace("+00:00", "Z"),
    }
