"""Vehicle token work as durable rows (``HMWork`` of the token kinds, see durable/__init__.py).

- **issue**: written with a clearance's move to approved (service-account credentials);
- **renew**: one recurring row per token, written with the token (``vehicle_tokens``) and due one
  margin before it expires;
- **revoke**: written with the move out of approved, or with the defleet that ends the access.

A waker per credential (``clearance.tasks.vehicle_token_work``) claims due rows one at a time, so
a worker killed mid-call holds one vehicle for one short lease. A transient failure is retried
per row after its own backoff (never sooner than HM's retry-after); a refusal gives up, in words
on the row and, where the vehicle lacks its token, on the vehicle.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from clearance import tasks
from clearance.clients import hm_client_for
from clearance.hm import HMClient, PermanentError, TransientError
from clearance.models import Clearance, ClearanceStatus, Credential, HMWork, VehicleToken
from clearance.services.common import record_error, retry_words, words
from clearance.services.vehicle_tokens import (
    ISSUE_WORDS,
    RENEW_WORDS,
    TokenRefused,
    expiring_without_renewal,
    needs_token,
    refresh_due_at,
    refresh_vehicle_token,
    revoke_vehicle_token,
    save_issued,
)
from durable import work

S = ClearanceStatus
K = HMWork.Kind
TOKEN_KINDS = (K.TOKEN_ISSUE, K.TOKEN_REFRESH, K.TOKEN_REVOKE)
# The vehicle row's words while its token is owed (a revocation is the row's business only).
WAITING_WORDS: dict[str, str] = {K.TOKEN_ISSUE: ISSUE_WORDS, K.TOKEN_REFRESH: RENEW_WORDS}
# Rows per waker task (one HM call each): short tasks, a warm shutdown within seconds.
TOKEN_BATCH = 25


def token_work(credential_id: int) -> QuerySet[HMWork]:
    """The credential's token work that is not finished (and done, for history)."""
    return HMWork.objects.filter(credential_id=credential_id, kind__in=TOKEN_KINDS)


def queue(kind: str, clearances: Iterable[tuple[int, int]]) -> int:
    """Write token work of ``kind`` for (clearance id, credential id) pairs in the caller's
    transaction (one open row per clearance and kind: a repeat is a no-op), and wake each
    credential's waker after commit. Returns how many pairs were asked for."""
    pairs = sorted(set(clearances))
    if not pairs:
        return 0
    with transaction.atomic():
        for chunk in itertools.batched(pairs, 1000):
            HMWork.objects.bulk_create(
                [HMWork(clearance_id=pk, credential_id=cid, kind=kind) for pk, cid in chunk],
                ignore_conflicts=True,
            )
        for credential_id in sorted({cid for _pk, cid in pairs}):
            tasks.vehicle_token_work.delay_on_commit(credential_id)
    return len(pairs)


def after_moves(credential: Credential, moves: list[tuple[Clearance, str, str]]) -> None:
    """Token work owed after status changes, written in their transaction (service-account
    credentials): a token for an approved vehicle, a revocation when the access ends."""
    if credential.auth_mode != Credential.AuthMode.SERVICE_ACCOUNT or not moves:
        return
    approved = [(row.pk, credential.pk) for row, _, after in moves if after == S.APPROVED]
    ended = [
        (row.pk, credential.pk)
        for row, before, after in moves
        if before == S.APPROVED and after != before
    ]
    queue(K.TOKEN_ISSUE, approved)
    queue(K.TOKEN_REVOKE, ended)


def revoke_later(clearances: Iterable[Clearance]) -> int:
    """A revocation for each of these clearances that holds a token (a defleet ended the
    access), in the caller's transaction."""
    ids = [c.pk for c in clearances]
    pairs = VehicleToken.objects.filter(
        clearance_id__in=ids, clearance__credential__isnull=False
    ).values_list("clearance_id", "clearance__credential_id")
    return queue(K.TOKEN_REVOKE, pairs)


def schedule_missing_renewals() -> int:
    """Renewals for tokens about to expire that have none waiting (tokens stored before their
    renewal was durable work): written due now."""
    return queue(K.TOKEN_REFRESH, expiring_without_renewal())


def token_work_due(
    credential_id: int, *, batch_size: int = TOKEN_BATCH, stop: Callable[[], bool] | None = None
) -> tuple[int, bool]:
    """Up to ``batch_size`` of the credential's due token rows, each claimed on its own. Stops
    between two rows when ``stop()`` says so. Returns (rows done, whether more are due now)."""
    clients: dict[int, HMClient] = {}
    done = 0
    for _ in range(batch_size):
        if stop is not None and stop():
            break
        item = (
            work.claim(token_work(credential_id), limit=1, lease_seconds=token_lease())
            .select_related("clearance__vehicle", "clearance__credential")
            .first()
        )
        if item is None:
            return done, False
        do_one(item, clients)
        done += 1
    return done, work.due(token_work(credential_id)).exists()


def do_one(item: HMWork, clients: dict[int, HMClient] | None = None) -> None:
    """One claimed token row: the HM call, then the row's outcome."""
    clients = clients if clients is not None else {}
    clearance = item.clearance
    try:
        if item.kind == K.TOKEN_ISSUE:
            _issue(item, clearance, clients)
        elif item.kind == K.TOKEN_REFRESH:
            _refresh(item, clearance)
        else:
            _revoke(item, clearance, clients)
    except TransientError as exc:
        at = work.retry(HMWork, [item], words(exc), retry_after=getattr(exc, "retry_after", None))
        prefix = WAITING_WORDS.get(item.kind)
        if prefix:  # the vehicle is waiting for its token: say why and when
            record_error([clearance], retry_words(f"{prefix} {words(exc)}", at))


def _issue(item: HMWork, clearance: Clearance, clients: dict[int, HMClient]) -> None:
    if not needs_token(clearance) or VehicleToken.objects.filter(clearance=clearance).exists():
        work.complete(HMWork, [item])  # no longer owed, or already there
        return
    try:
        client = _client(clearance, clients)
        fresh = client.issue_vehicle_token(clearance.vehicle.vin)
    except (PermanentError, ValueError) as exc:
        refused = f"{ISSUE_WORDS} {words(exc)}"
        with transaction.atomic():
            work.give_up(HMWork, [item], refused)
            record_error([clearance], refused)
        return
    with transaction.atomic():
        save_issued(clearance, fresh)
        work.complete(HMWork, [item])


def _refresh(item: HMWork, clearance: Clearance) -> None:
    token = VehicleToken.objects.filter(clearance=clearance).first()
    if token is None or clearance.status != S.APPROVED or not token.refresh_token:
        work.complete(HMWork, [item])  # nothing left to renew
        return
    try:
        refresh_vehicle_token(token.pk)
    except TokenRefused as exc:
        with transaction.atomic():
            work.give_up(HMWork, [item], str(exc))
            if needs_token(clearance):  # still approved: a new token instead of the dropped one
                queue(K.TOKEN_ISSUE, [(clearance.pk, item.credential_id)])
        return
    expires_at = VehicleToken.objects.filter(pk=token.pk).values_list("expires_at", flat=True)
    if not expires_at:
        work.complete(HMWork, [item])
        return
    work.reschedule(HMWork, [item], refresh_due_at(expires_at[0]))


def _revoke(item: HMWork, clearance: Clearance, clients: dict[int, HMClient]) -> None:
    refused = ""
    if VehicleToken.objects.filter(clearance=clearance).exists():
        try:
            refused = revoke_vehicle_token(clearance, _client(clearance, clients))
        except ValueError as exc:  # the credential cannot make a client any more
            VehicleToken.objects.filter(clearance=clearance).delete()
            refused = f"Could not revoke the vehicle's access token: {words(exc)}"
    with transaction.atomic():
        if refused:
            work.give_up(HMWork, [item], refused)
        else:
            work.complete(HMWork, [item])
        clearance.refresh_from_db(fields=["status"])
        if needs_token(clearance):  # approved again meanwhile: a fresh token
            queue(K.TOKEN_ISSUE, [(clearance.pk, item.credential_id)])


def _client(clearance: Clearance, clients: dict[int, HMClient]) -> HMClient:
    credential = clearance.credential
    if credential is None:
        raise ValueError("The clearance has no credential any more.")
    if credential.pk not in clients:
        clients[credential.pk] = hm_client_for(credential)
    return clients[credential.pk]


def token_lease() -> float:
    """Longest one claimed token row may take: an app token and a token call at their slowest,
    plus the wait for another worker's renewal of the same token."""
    return 2 * (settings.HM_CONNECT_TIMEOUT + settings.HM_READ_TIMEOUT) + 75


def clearance_pairs(clearance_ids: Iterable[int] | None, **filters: Any) -> list[tuple[int, int]]:
    """(clearance id, credential id) of the clearances (these ids, if given) matching
    ``filters`` that have a credential."""
    rows = Clearance.objects.filter(credential__isnull=False, **filters)
    if clearance_ids is not None:
        rows = rows.filter(pk__in=list(clearance_ids))
    return list(rows.values_list("pk", "credential_id"))
