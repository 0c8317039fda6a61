"""Legacy per-vehicle tokens (service-account mode): issued when a clearance is approved,
refreshed under a row lock before they expire, revoked when the access ends.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from clearance import tasks
from clearance.clients import CredentialIncomplete, hm_client_for
from clearance.hm import HMClient, HMError, PermanentError
from clearance.locks import cache_lock
from clearance.models import Clearance, ClearanceStatus, Credential, VehicleToken
from clearance.services.common import record_error, words

logger = logging.getLogger(__name__)

S = ClearanceStatus


def after_moves(credential: Credential, moves: list[tuple[Clearance, str, str]]) -> None:
    """Side effects of status changes (after commit): legacy vehicle tokens issued on approval
    (service-account mode) and revoked when the access ends."""
    if credential.auth_mode != Credential.AuthMode.SERVICE_ACCOUNT or not moves:
        return
    approved = [row.pk for row, _, after in moves if after == S.APPROVED]
    ended = [row.pk for row, before, after in moves if before == S.APPROVED and after != before]
    if approved:
        tasks.issue_vehicle_tokens.delay_on_commit(approved)
    if ended:
        tasks.revoke_vehicle_tokens.delay_on_commit(ended)


def issue_vehicle_tokens(clearance_ids: Iterable[int], *, client: HMClient | None = None) -> int:
    """POST /v1/fleets/access_tokens for approved clearances without a token. Transient errors
    propagate (the task retries the remaining ones); permanent ones are written on the row."""
    issued = 0
    rows = (
        Clearance.objects.select_related("vehicle", "credential")
        .filter(pk__in=list(clearance_ids), status=S.APPROVED, vehicle_token__isnull=True)
        .order_by("pk")
    )
    for clearance in rows:
        credential = clearance.credential
        if credential is None or credential.auth_mode != Credential.AuthMode.SERVICE_ACCOUNT:
            continue
        hm = client or hm_client_for(credential)
        try:
            token = hm.issue_vehicle_token(clearance.vehicle.vin)
        except PermanentError as exc:
            record_error([clearance], f"Could not get the vehicle's access token: {exc.message}")
            continue
        VehicleToken.objects.update_or_create(
            clearance=clearance,
            defaults={
                "access_token": token.access_token,
                "refresh_token": token.refresh_token or "",
                "authorization_id": token.authorization_id or "",
                "scope": token.scope,
                "expires_at": token.expires_at,
            },
        )
        issued += 1
    return issued


def refresh_vehicle_token(
    token_pk: int, *, client: HMClient | None = None, margin_seconds: int | None = None
) -> bool:
    """Refresh one vehicle token if it expires within the margin, under a row lock; the rotated
    refresh token is saved in the same transaction. False when another worker already did."""
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
        hm = client or hm_client_for(_credential_of(token.clearance))
        try:
            fresh = hm.refresh_vehicle_token(token.refresh_token)
        except (PermanentError, ValueError) as exc:
            record_error(
                [token.clearance], f"Could not renew the vehicle's access token: {words(exc)}"
            )
            token.delete()
            return False
        token.access_token = fresh.access_token
        if fresh.refresh_token:
            token.refresh_token = fresh.refresh_token
        token.expires_at = fresh.expires_at
        token.scope = fresh.scope or token.scope
        token.save()
    return True


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


def expiring_vehicle_tokens(margin_seconds: int | None = None) -> list[int]:
    margin = (
        settings.VEHICLE_TOKEN_REFRESH_MARGIN_SECONDS if margin_seconds is None else margin_seconds
    )
    cutoff = timezone.now() + timedelta(seconds=margin)
    return list(
        VehicleToken.objects.filter(expires_at__lte=cutoff, clearance__status=S.APPROVED)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:1000]
    )


def revoke_vehicle_tokens(clearance: Clearance, client: HMClient | None = None) -> bool:
    """DELETE /v1/access_tokens for the clearance's legacy token; the row goes either way
    (a failed revoke is logged: HM ends the tokens with the clearance anyway)."""
    token = VehicleToken.objects.filter(clearance=clearance).first()
    if token is None:
        return False
    try:
        hm = client or hm_client_for(_credential_of(clearance))
        hm.revoke_token(token.refresh_token or token.access_token)
    except (HMError, ValueError) as exc:
        logger.warning("Could not revoke the vehicle token of clearance %s: %s", clearance.pk, exc)
    token.delete()
    return True


def vehicle_access_token(clearance: Clearance, *, client: HMClient | None = None) -> str | None:
    """A usable legacy vehicle access token (refreshed first when it is about to expire)."""
    token = VehicleToken.objects.filter(clearance=clearance).first()
    if token is None:
        return None
    if token.expires_at <= timezone.now() + timedelta(
        seconds=settings.VEHICLE_TOKEN_REFRESH_MARGIN_SECONDS
    ):
        refresh_vehicle_token(token.pk, client=client)
        token = VehicleToken.objects.filter(clearance=clearance).first()
    return token.access_token if token else None


def revoke_tokens_of(clearance_ids: Iterable[int]) -> None:
    """Revoke the legacy tokens of these clearances (their access ended); one client per
    credential. A credential that cannot make a client any more only loses the rows."""
    clients: dict[int, HMClient] = {}
    rows = Clearance.objects.select_related("credential").filter(
        pk__in=list(clearance_ids), vehicle_token__isnull=False
    )
    for clearance in rows:
        credential = clearance.credential
        try:
            if credential is None:
                raise CredentialIncomplete("The clearance has no credential any more.")
            client = clients.get(credential.pk) or hm_client_for(credential)
        except ValueError:
            VehicleToken.objects.filter(clearance=clearance).delete()
            continue
        clients[credential.pk] = client
        revoke_vehicle_tokens(clearance, client)


def _credential_of(clearance: Clearance) -> Credential:
    if clearance.credential is None:
        raise CredentialIncomplete("The clearance has no credential any more.")
    return clearance.credential
