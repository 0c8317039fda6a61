"""API tokens: created (shown once), found by their hash, revoked."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from api.models import ApiToken, Scope
from audit import log as audit
from audit.context import Actor
from audit.models import Action
from organizations.models import Organization

TOKEN_PREFIX = "fpt_"
# last_used_at is written at most this often per token (not one UPDATE per request).
LAST_USED_RESOLUTION = timedelta(minutes=1)


def create_token(
    organization: Organization,
    *,
    name: str,
    scope: str = Scope.READ,
    expires_at: datetime | None = None,
    by: Any = None,
) -> tuple[ApiToken, str]:
    """A new token and its secret text, which is never stored and cannot be shown again."""
    text = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        organization=organization,
        name=name,
        scope=scope,
        expires_at=expires_at,
        prefix=text[:12],
        token_hash=ApiToken.hash_token(text),
        created_by=by if getattr(by, "pk", None) else None,
    )
    audit.record(
        Action.API_TOKEN_CREATED,
        organization=organization,
        target=_target(token),
    )
    return token, text


def _target(token: ApiToken) -> audit.Target:
    details = {"scope": token.scope}
    if token.expires_at:
        details["expires"] = token.expires_at.isoformat()
    return audit.Target("api_token", token.public_id, f"{token.name} ({token.prefix}…)", details)


def actor(token: ApiToken, ip: str | None = None) -> Actor:
    """A token as the audit log names it."""
    return Actor(label=f"API token “{token.name}” ({token.prefix}…)", token_id=token.pk, ip=ip)


def revoke_token(token: ApiToken, *, by: Any = None) -> bool:
    """Revoke at once; False when it was revoked already."""
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=by if getattr(by, "pk", None) else None
    )
    token.refresh_from_db(fields=["revoked_at", "revoked_by"])
    if updated:
        audit.record(
            Action.API_TOKEN_REVOKED, organization_id=token.organization_id, target=_target(token)
        )
    return bool(updated)


def authenticate(text: str) -> ApiToken | None:
    """The usable token with this text (not revoked, not expired), or None."""
    if not text or not text.startswith(TOKEN_PREFIX) or len(text) > 200:
        return None
    token = (
        ApiToken.objects.usable()
        .select_related("organization")
        .filter(token_hash=ApiToken.hash_token(text))
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token
