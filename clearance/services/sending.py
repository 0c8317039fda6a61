"""Sending: due clearance sends (``HMWork``) go to HM in batches.

``request_clearances`` (the sender task's work) claims due sends with SKIP LOCKED and makes one
``POST /v1/fleets/vehicles`` per ``HM_CLEARANCE_BATCH_SIZE`` vehicles, applying each VIN's answer
through the state machine. A batch is marked "sending" before the POST; after an unclear failure
HM is asked which of its VINs it already has, and only the others are sent again. The rows are
written by ``clearance.services.onboarding``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from clearance import state
from clearance.clients import hm_client_for
from clearance.hm import (
    AuthenticationError,
    ClearanceRequest,
    ClearanceResult,
    ForbiddenError,
    HMClient,
    HMInterrupted,
    PermanentError,
    RateLimited,
    TransientError,
)
from clearance.models import Clearance, ClearanceStatus, Credential, HMWork
from clearance.services.common import record_error, retry_words, words
from clearance.services.token_work import after_moves
from clearance.state import Change, Source
from durable import work
from vehicles.models import Vehicle

S = ClearanceStatus


@dataclass
class RequestSummary:
    sent: int = 0
    batches: int = 0
    hm_calls: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0
    already_known: int = 0  # after an unclear failure, HM already had them: not sent again
    retrying: int = 0  # rows that failed for a passing reason: due again after their backoff
    more: bool = False  # stopped early (deadline, batch count, shutdown); more rows are due
    error: str = ""  # a credential-level failure that stopped the run


def _request_for(vehicle: Vehicle) -> ClearanceRequest:
    tags = vehicle.tags if isinstance(vehicle.tags, dict) else {}
    return ClearanceRequest(
        vin=vehicle.vin.upper(),
        brand=vehicle.brand,
        tags={str(k): str(v) for k, v in tags.items()} or None,
        control_odometer_km=vehicle.odometer_km,
    )


def _errorwords(description: str | None) -> str:
    if not description:
        return "High Mobility refused the request without saying why."
    return f"High Mobility refused the request: {description}."


def send_work(credential_id: int) -> QuerySet[HMWork]:
    """The credential's clearance sends that are not finished (durable work, ``HMWork``)."""
    return HMWork.objects.filter(credential_id=credential_id, kind=HMWork.Kind.SEND)


def request_clearances(
    credential_id: int,
    *,
    client: HMClient | None = None,
    deadline: float | None = None,
    max_batches: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> RequestSummary:
    """Send this credential's due clearance sends in batches of ``HM_CLEARANCE_BATCH_SIZE``
    (control measures where known) and apply each VIN's answer.

    Each batch is claimed (``durable.work.claim``), marked "sending" before the POST and
    finished per row: answered rows are done, failed ones retried after their own backoff,
    permanent refusals written in words. Nothing raises for HM's sake. Stops at ``deadline``
    (time.monotonic()), after ``max_batches`` or when ``stop()`` says so, reporting ``more``.
    """
    credential = Credential.objects.get(pk=credential_id)
    summary = RequestSummary()
    try:
        client = client or hm_client_for(credential)
    except ValueError as exc:  # CredentialIncomplete and friends: an owner must fix it
        summary.error = words(exc)
        rows = list(work.claim(send_work(credential_id), limit=10_000, lease_seconds=60))
        _retry(rows, summary.error)
        return summary
    while True:
        if (
            (deadline is not None and time.monotonic() > deadline)
            or (max_batches is not None and summary.batches >= max_batches)
            or (stop is not None and stop())
        ):
            summary.more = work.due(send_work(credential_id)).exists()
            break
        claimed = list(
            work.claim(
                send_work(credential_id),
                limit=settings.HM_CLEARANCE_BATCH_SIZE,
                lease_seconds=hm_lease_seconds(),
            )
            .select_related("clearance__vehicle")
            .order_by("pk")
        )
        if not claimed:
            break
        summary.batches += 1
        if not _send_batch(credential, client, claimed, summary):
            break
    return summary


def hm_lease_seconds() -> float:
    """How long a claimed batch stays invisible to other workers: a token, a list and a send
    call at their longest, with a margin."""
    return 3 * (settings.HM_CONNECT_TIMEOUT + settings.HM_READ_TIMEOUT) + 15


def _retry(rows: list[HMWork], reason: str, *, retry_after: float | None = None) -> None:
    """Due again after each row's backoff; the clearance says why and when, in words."""
    if not rows:
        return
    at = work.retry(HMWork, rows, reason, retry_after=retry_after)
    record_error([w.clearance for w in rows], retry_words(reason, at))


def _send_batch(
    credential: Credential, client: HMClient, claimed: list[HMWork], summary: RequestSummary
) -> bool:
    """One batch; False when the run must stop (the credential refused, the worker stopping)."""
    stale = [w for w in claimed if w.clearance.status != S.QUEUED]
    work.complete(HMWork, stale)  # sent or moved meanwhile: nothing left to do
    batch = [w for w in claimed if w.clearance.status == S.QUEUED]
    learned_at = timezone.now()
    try:
        unclear = [w for w in batch if w.sending_at is not None]
        if unclear:
            batch = _drop_known(credential, client, batch, unclear, learned_at, summary)
        if not batch:
            return True
        HMWork.objects.filter(pk__in=[w.pk for w in batch]).update(sending_at=learned_at)
        summary.hm_calls += 1
        results = client.request_clearances([_request_for(w.clearance.vehicle) for w in batch])
    except (AuthenticationError, ForbiddenError) as exc:
        # The application itself is refused: the rows stay queued and say why until an owner
        # fixes the credential (retried with backoff; nothing was received).
        HMWork.objects.filter(pk__in=[w.pk for w in batch]).update(sending_at=None)
        summary.error = words(exc)
        _retry(batch, summary.error)
        return False
    except HMInterrupted:
        # The worker is stopping: the batch is due again at once, its attempt not counted, and
        # still marked "sending" (HM may have it), so the next worker asks HM before resending.
        work.release(HMWork, batch)
        summary.more = True
        return False
    except TransientError as exc:
        if isinstance(exc, RateLimited):  # refused before any work: nothing was received
            HMWork.objects.filter(pk__in=[w.pk for w in batch]).update(sending_at=None)
        summary.retrying += len(batch)
        _retry(batch, words(exc), retry_after=getattr(exc, "retry_after", None))
        return True
    except PermanentError as exc:
        with transaction.atomic():
            _fail_batch(_locked(batch), words(exc), learned_at)
            work.give_up(HMWork, batch, words(exc))
        return True
    with transaction.atomic():
        answered = _apply_request_results(credential, _locked(batch), results, learned_at, summary)
        work.complete(HMWork, [w for w in batch if w.clearance_id in answered])
    unanswered = [w for w in batch if w.clearance_id not in answered]
    _retry(unanswered, "High Mobility did not answer for this vehicle; it will be sent again.")
    return True


def _drop_known(
    credential: Credential,
    client: HMClient,
    batch: list[HMWork],
    unclear: list[HMWork],
    learned_at: datetime,
    summary: RequestSummary,
) -> list[HMWork]:
    """After an unclear failure (a timeout, a lost answer) HM may have these VINs already: ask
    it first, take its word for the ones it knows, and keep only the others to send."""
    vins = [w.clearance.vehicle.vin.upper() for w in unclear]
    summary.hm_calls += 1
    listed = client.list_clearances({"vin": {"operator": "in", "value": vins}})
    known = {v.vin.upper(): v for v in listed if v.vin.upper() in set(vins)}
    if not known:
        return batch
    had = [w for w in unclear if w.clearance.vehicle.vin.upper() in known]
    with transaction.atomic():
        pairs = []
        rows = _locked(had)
        for row in rows:
            vehicle = known[row.vehicle.vin.upper()]
            row.requested_at = row.requested_at or learned_at
            pairs.append(
                (
                    row,
                    Change(
                        status=state.normalise(vehicle.status),
                        source=Source.API,
                        learned_at=learned_at,
                        detail="High Mobility already had this request; it was not sent again.",
                    ),
                )
            )
        bulk = state.apply_changes(pairs, touched=rows)
        after_moves(credential, bulk.moves)
        work.complete(HMWork, had)
    summary.already_known += len(had)
    return [w for w in batch if w not in had]


def _locked(batch: list[HMWork]) -> list[Clearance]:
    """The batch's clearances as stored now, row-locked until the answer is applied."""
    return list(
        Clearance.objects.select_for_update(of=("self",))
        .select_related("vehicle")
        .filter(pk__in=[w.clearance_id for w in batch])
        .order_by("pk")
    )


def _apply_request_results(
    credential: Credential,
    batch: list[Clearance],
    results: list[ClearanceResult],
    learned_at: datetime,
    summary: RequestSummary,
) -> set[int]:
    """Apply HM's answer per VIN; returns the ids of the clearances it answered for."""
    by_vin = {r.vin.upper(): r for r in results}
    pairs = []
    touched = []
    for row in batch:
        answer = by_vin.get(row.vehicle.vin.upper())
        if answer is None:
            summary.unanswered += 1
            continue
        status = state.normalise(answer.status)
        summary.sent += 1
        summary.statuses[status] += 1
        row.requested_at = learned_at
        touched.append(row)
        if status == S.ERROR:
            row.last_error = _errorwords(answer.description)
            row.last_error_at = learned_at
        else:  # sent: the words of earlier tries are history now
            row.last_error = ""
            row.last_error_at = None
        pairs.append(
            (
                row,
                Change(
                    status=status,
                    source=Source.API,
                    learned_at=learned_at,
                    description=answer.description or None,
                    detail=answer.description or "",
                ),
            )
        )
    bulk = state.apply_changes(pairs, touched=touched)
    after_moves(credential, bulk.moves)
    return {row.pk for row, _change in pairs}


def _fail_batch(batch: list[Clearance], words: str, learned_at: datetime) -> None:
    pairs = []
    for row in batch:
        row.last_error = words
        row.last_error_at = learned_at
        pairs.append((row, Change(status=S.ERROR, source=Source.API, learned_at=learned_at)))
    state.apply_changes(pairs, touched=batch)
