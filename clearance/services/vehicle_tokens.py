"""Legacy per-vehicle tokens (service-account mode): the HM calls and the stored token.

A token is issued when a clearance is approved, renewed under a row lock before it expires and
revoked when the access ends. *When* each of these happens is durable work (``HMWork`` rows of
the token kinds, ``clearance.services.token_work``); the renewal's row is written with the token
it renews, so a stored token always has its renewal scheduled.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from clearance.clients import CredentialIncomplete, hm_client_for
from clearance.hm import HMClient, PermanentError
from clearance.hm.types import VehicleAccessToken
from clearance.locks import cache_lock
from clearance.models import Clearance, ClearanceStatus, Credential, HMWork, VehicleToken
from clearance.services.common import record_error, words
from durable.models import WorkState

logger = logging.getLogger(__name__)

S = ClearanceStatus
# The words of token failures on the vehicle row start with these (cleared once a token works).
ISSUE_WORDS = "Could not get the vehicle's access token:"
RENEW_WORDS = "Could not renew the vehicle's access token:"


class TokenRefused(Exception):
    """HM refused to renew a token for good: it was dropped; ``str(exc)`` says why."""


def needs_token(clearance: Clearance) -> bool:
    """Approved, with a service-account credential: the vehicle is owed a token."""
    credential = clearance.credential
    return (
        clearance.status == S.APPROVED
        and credential is not None
        and credential.auth_mode == Credential.AuthMode.SERVICE_ACCOUNT
    )


def refresh_due_at(expires_at: datetime) -> datetime:
    return expires_at - timedelta(seconds=settings.VEHICLE_TOKEN_REFRESH_MARGIN_SECONDS)


def save_issued(clearance: Clearance, fresh: VehicleAccessToken) -> VehicleToken:
    """Store a token HM just issued and schedule its renewal, in one transaction."""
    with transaction.atomic():
        token, _ = VehicleToken.objects.update_or_create(
            clearance=clearance,
            defaults={
                "access_token": fresh.access_token,
                "refresh_token": fresh.refresh_token or "",
                "authorization_id": fresh.authorization_id or "",
                "scope": fresh.scope,
                "expires_at": fresh.expires_at,
            },
        )
        schedule_refresh(clearance, fresh.expires_at)
        Clearance.objects.filter(pk=clearance.pk, last_error__startswith=ISSUE_WORDS).update(
            last_error="", last_error_at=None
        )
    return token


def schedule_refresh(clearance: Clearance, expires_at: datetime) -> None:
    """The renewal of the clearance's token, due one margin before ``expires_at``: its waiting
    renewal row moved there, or a new row. A row a worker holds is left alone: that worker
    reschedules it from the stored expiry when it is done."""
    if clearance.credential_id is None:
        return
    at = refresh_due_at(expires_at)
    rows = HMWork.objects.filter(clearance=clearance, kind=HMWork.Kind.TOKEN_REFRESH)
    if rows.filter(state=WorkState.RUNNING).exists():
        return
    if rows.filter(state=WorkState.PENDING).update(next_attempt_at=at, attempts=0, last_error=""):
        return
    HMWork.objects.bulk_create(
        [
            HMWork(
                clearance=clearance,
                credential_id=clearance.credential_id,
                kind=HMWork.Kind.TOKEN_REFRESH,
                next_attempt_at=at,
            )
        ],
        ignore_conflicts=True,
    )


def refresh_vehicle_token(
    token_pk: int, *, client: HMClient | None = None, margin_seconds: int | None = None
) -> bool:
    """Renew one vehicle token if it expires within the margin, under a row lock; the rotated
    refresh token is saved in the same transaction. False when it was not due (another worker
    already renewed it). A permanent refusal drops the token, says so on the vehicle and raises
    ``TokenRefused``; transient HM errors propagate."""
    margin = timedelta(
        seconds=settings.VEHICLE_TOKEN_REFRESH_MARGIN_SECONDS
        if margin_seconds is None
        else margin_seconds
    )
    with _token_guard(token_pk):
        token = (
            VehicleToken.objects.select_for_update(of=("self",))
            .select_related("clearance__credential")
            .filter(pk=token_pk)
            .first()
        )
        if token is None or token.expires_at > timezone.now() + margin:
            return False
        if not token.refresh_token:
            return False
        refused = ""
        try:
            hm = client or hm_client_for(_credential_of(token.clearance))
            fresh = hm.refresh_vehicle_token(token.refresh_token)
        except (PermanentError, ValueError) as exc:
            refused = f"{RENEW_WORDS} {words(exc)}"
            record_error([token.clearance], refused)
            token.delete()
        else:
            token.access_token = fresh.access_token
            if fresh.refresh_token:
                token.refresh_token = fresh.refresh_token
            token.expires_at = fresh.expires_at
            token.scope = fresh.scope or token.scope
            with transaction.atomic():  # the rotated token and its next renewal, also on SQLite
                token.save()
                schedule_refresh(token.clearance, token.expires_at)
                Clearance.objects.filter(
                    pk=token.clearance_id, last_error__startswith=RENEW_WORDS
                ).update(last_error="", last_error_at=None)
    if refused:  # raised once the drop is committed
        raise TokenRefused(refused)
    return True


def revoke_vehicle_token(clearance: Clearance, client: HMClient) -> str:
    """DELETE /v1/access_tokens for the clearance's token, under the token's lock, then drop the
    row. Transient HM errors propagate (the token is kept for the next try). A refusal drops the
    row too (HM ends the tokens with the clearance anyway) and is returned in words ("" when
    revoked or when there was no token)."""
    token_pk = VehicleToken.objects.filter(clearance=clearance).values_list("pk", flat=True).first()
    if token_pk is None:
        return ""
    with _token_guard(token_pk):
        token = VehicleToken.objects.select_for_update(of=("self",)).filter(pk=token_pk).first()
        if token is None:
            return ""
        refused = ""
        try:
            client.revoke_token(token.refresh_token or token.access_token)
        except PermanentError as exc:
            refused = f"High Mobility refused to revoke the vehicle's access token: {exc.message}"
            logger.warning("Clearance %s: %s", clearance.pk, refused)
        token.delete()
    return refused


@contextlib.contextmanager
def _token_guard(token_pk: int) -> Iterator[None]:
    """PostgreSQL: a transaction, so select_for_update holds the token row until the rotated
    refresh token is saved. SQLite (no row locks; an open reader would block the simulator's
    writes): a cache lock per token instead, and autocommit."""
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            yield
        return
    with cache_lock(f"vehicle-token:{token_pk}", timeout=120, wait=60):
        yield


def expiring_without_renewal(margin_seconds: int | None = None) -> list[tuple[int, int]]:
    """(clearance id, credential id) of approved vehicles whose token expires within the margin
    and has no renewal waiting (tokens stored before renewals were durable work)."""
    margin = (
        settings.VEHICLE_TOKEN_REFRESH_MARGIN_SECONDS if margin_seconds is None else margin_seconds
    )
    cutoff = timezone.now() + timedelta(seconds=margin)
    scheduled = HMWork.objects.filter(
        kind=HMWork.Kind.TOKEN_REFRESH, state__in=[WorkState.PENDING, WorkState.RUNNING]
    ).values("clearance_id")
    return list(
        VehicleToken.objects.filter(
            expires_at__lte=cutoff,
            clearance__status=S.APPROVED,
            clearance__credential__isnull=False,
        )
        .exclude(clearance_id__in=scheduled)
        .order_by("expires_at")
        .values_list("clearance_id", "clearance__credential_id")[:1000]
    )


def vehicle_access_token(clearance: Clearance, *, client: HMClient | None = None) -> str | None:
    """A usable legacy vehicle access token (renewed first when it is about to expire)."""
    token = VehicleToken.objects.filter(clearance=clearance).first()
    if token is None:
        return None
    if token.expires_at <= timezone.now() + timedelta(
        seconds=settings.VEHICLE_TOKEN_REFRESH_MARGIN_SECONDS
    ):
        with contextlib.suppress(TokenRefused):
            refresh_vehicle_token(token.pk, client=client)
        token = VehicleToken.objects.filter(clearance=clearance).first()
    return token.access_token if token else None


def _credential_of(clearance: Clearance) -> Credential:
    if clearance.credential is None:
        raise CredentialIncomplete("The clearance has no credential any more.")
    return clearance.credential
