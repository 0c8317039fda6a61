"""The durable-work machinery (durable/work.py) on a real work table (clearance.HMWork)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from clearance.models import HMWork
from durable import work
from durable.models import WorkState
from tests.factories import ClearanceFactory

pytestmark = pytest.mark.django_db


def _rows(n, **fields):
    rows = []
    for _ in range(n):
        clearance = ClearanceFactory()
        rows.append(
            HMWork.objects.create(
                clearance=clearance, credential=clearance.credential, kind="send", **fields
            )
        )
    return rows


def test_claim_takes_due_rows_once_and_counts_the_attempt():
    rows = _rows(3)
    later = _rows(1, next_attempt_at=timezone.now() + timedelta(hours=1))
    claimed = list(work.claim(HMWork.objects.all(), limit=2, lease_seconds=60))
    assert [r.pk for r in claimed] == [r.pk for r in rows[:2]]
    assert {r.state for r in claimed} == {WorkState.RUNNING}
    assert {r.attempts for r in claimed} == {1}
    # A second claimer gets only what is left and due: never a claimed row, never a future one.
    second = list(work.claim(HMWork.objects.all(), limit=10, lease_seconds=60))
    assert [r.pk for r in second] == [rows[2].pk]
    assert later[0].pk not in {r.pk for r in claimed + second}
    assert list(work.claim(HMWork.objects.all(), limit=10, lease_seconds=60)) == []


def test_a_lapsed_lease_makes_the_row_due_again():
    (row,) = _rows(1)
    (claimed,) = work.claim(HMWork.objects.all(), limit=1, lease_seconds=60)
    assert work.due_keys(HMWork.objects.all(), "credential_id") == []
    # The worker died: its lease ends and the row is due again, attempt counted twice.
    HMWork.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert work.due_keys(HMWork.objects.all(), "credential_id") == [row.credential_id]
    (again,) = work.claim(HMWork.objects.all(), limit=1, lease_seconds=60)
    assert again.pk == row.pk and again.attempts == 2 and again.claim != claimed.claim


def test_retry_is_per_row_with_growing_backoff_and_honours_retry_after(settings):
    settings.DURABLE_RETRY_BASE_SECONDS = 10
    settings.DURABLE_RETRY_MAX_SECONDS = 1000
    fresh, tired = _rows(2)
    HMWork.objects.filter(pk=tired.pk).update(attempts=5)
    claimed = list(work.claim(HMWork.objects.all(), limit=2, lease_seconds=60))
    before = timezone.now()
    work.retry(HMWork, claimed, "High Mobility did not answer in time.")
    fresh.refresh_from_db()
    tired.refresh_from_db()
    assert fresh.state == tired.state == WorkState.PENDING
    assert fresh.last_error == "High Mobility did not answer in time."
    # First failure: 5-10 s; sixth failure: 160-320 s (each row its own count, no shared budget).
    assert timedelta(seconds=5) <= fresh.next_attempt_at - before <= timedelta(seconds=11)
    assert timedelta(seconds=160) <= tired.next_attempt_at - before <= timedelta(seconds=321)
    (again,) = work.claim(HMWork.objects.filter(pk=fresh.pk), limit=1, lease_seconds=60) or [None]
    assert again is None  # not due before its backoff
    HMWork.objects.filter(pk=fresh.pk).update(next_attempt_at=timezone.now())
    claimed = list(work.claim(HMWork.objects.filter(pk=fresh.pk), limit=1, lease_seconds=60))
    work.retry(HMWork, claimed, "Too many requests.", retry_after=120)
    fresh.refresh_from_db()
    assert fresh.next_attempt_at - before >= timedelta(seconds=120)


def test_backoff_is_capped_and_jittered(settings):
    settings.DURABLE_RETRY_BASE_SECONDS = 5
    settings.DURABLE_RETRY_MAX_SECONDS = 600
    delays = {round(work.backoff(40), 3) for _ in range(20)}
    assert all(300 <= d <= 600 for d in delays)
    assert len(delays) > 1


def test_give_up_and_complete_leave_the_due_set_with_words():
    failed, done = _rows(2)
    work.give_up(HMWork, [failed], "High Mobility does not support this brand.")
    work.complete(HMWork, [done])
    failed.refresh_from_db()
    done.refresh_from_db()
    assert (failed.state, failed.last_error) == (
        WorkState.FAILED,
        "High Mobility does not support this brand.",
    )
    assert done.state == WorkState.DONE
    assert list(work.due(HMWork.objects.all())) == []
    assert work.next_due_at(HMWork.objects.all()) is None


def test_release_hands_rows_back_without_counting_the_attempt():
    (row,) = _rows(1)
    claimed = list(work.claim(HMWork.objects.all(), limit=1, lease_seconds=600))
    work.release(HMWork, claimed)
    row.refresh_from_db()
    assert (row.state, row.attempts) == (WorkState.PENDING, 0)
    assert work.due_keys(HMWork.objects.all(), "credential_id") == [row.credential_id]


def test_reschedule_makes_recurring_work_fresh_and_due_later():
    (row,) = _rows(1)
    (claimed,) = work.claim(HMWork.objects.all(), limit=1, lease_seconds=60)
    work.retry(HMWork, [claimed], "High Mobility did not answer in time.")
    HMWork.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    (claimed,) = work.claim(HMWork.objects.all(), limit=1, lease_seconds=60)
    at = timezone.now() + timedelta(minutes=50)
    assert work.reschedule(HMWork, [claimed], at) == 1
    row.refresh_from_db()
    assert (row.state, row.attempts, row.last_error, row.claim) == ("pending", 0, "", "")
    assert row.next_attempt_at == at
    assert list(work.claim(HMWork.objects.all(), limit=1, lease_seconds=60)) == []


def test_reconcile_wakes_each_due_key_and_survives_a_broken_kind(monkeypatch):
    rows = _rows(2)
    _rows(1, next_attempt_at=timezone.now() + timedelta(hours=1))
    woken = []
    monkeypatch.setattr(work, "REGISTRY", {})

    def broken(now):
        raise RuntimeError("table missing")

    def broker_down(key):
        raise ConnectionError("broker down")

    work.register("broken", due=broken, wake=woken.append)
    work.register("down", due=lambda now: [1], wake=broker_down)
    work.register(
        "hm",
        due=lambda now: work.due_keys(HMWork.objects.all(), "credential_id", now),
        wake=woken.append,
    )
    assert work.reconcile() == {"down": 0, "hm": 2}
    assert sorted(woken) == sorted(r.credential_id for r in rows)
