"""durable.work.lock_due, as import batches use it: due rows locked for one transaction only."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from durable import work
from imports.models import ImportJob, ImportWork


def make_work(organization, **fields) -> ImportWork:
    job = ImportJob.objects.create(organization=organization, status=ImportJob.Status.IMPORTING)
    return ImportWork.objects.create(job=job, kind=ImportWork.Kind.BATCH, **fields)


@pytest.mark.django_db
def test_only_due_rows_and_at_most_the_limit(organization):
    due = [make_work(organization) for _ in range(3)]
    make_work(organization, next_attempt_at=timezone.now() + timedelta(minutes=5))
    make_work(organization, state="done")
    with transaction.atomic():
        locked = work.lock_due(ImportWork.objects.all(), limit=2)
    assert [row.pk for row in locked] == [row.pk for row in due[:2]]  # oldest due first
    assert {row.state for row in locked} == {"pending"}  # no lease: nothing to wait for


@pytest.mark.django_db(transaction=True)
def test_a_row_locked_by_one_transaction_is_skipped_by_another_until_it_ends(organization):
    row = make_work(organization)
    if not connection.features.has_select_for_update_skip_locked:
        # SQLite has no row locks: lock_due writes the rows first, which takes the database's
        # single write lock for the rest of the transaction (other writers wait for it).
        before = row.updated_at
        with transaction.atomic():
            assert [r.pk for r in work.lock_due(ImportWork.objects.all())] == [row.pk]
            assert connection.in_atomic_block
        row.refresh_from_db()
        assert row.updated_at > before
        return
    seen: list[list[int]] = []

    def other_worker() -> None:
        try:
            with transaction.atomic():
                seen.append([r.pk for r in work.lock_due(ImportWork.objects.all())])
        finally:
            connections.close_all()

    with transaction.atomic():
        assert [r.pk for r in work.lock_due(ImportWork.objects.all())] == [row.pk]
        thread = threading.Thread(target=other_worker)
        thread.start()
        thread.join()
    # The transaction ended (as a killed worker's does): the row is due to the next one at once.
    thread = threading.Thread(target=other_worker)
    thread.start()
    thread.join()
    assert seen == [[], [row.pk]]
