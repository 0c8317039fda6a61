"""Durable background work: PostgreSQL holds the work and its state, the broker only wakes workers.

The rules (one place for all apps; see docs/durability.md for the operator's view):

1. **Work is a row.** A model built on ``durable.models.DurableWork`` has ``state`` (pending,
   running, done, failed), ``attempts``, ``next_attempt_at`` and ``last_error`` (words). The row
   is written in the same transaction as the user's action, so what was asked for is never lost.
2. **Tasks are idempotent wakers.** A Celery task carries no work, only a key ("send what is
   due for credential 7"): it claims due rows with ``durable.work.claim`` (``SKIP LOCKED`` on
   PostgreSQL, a compare-and-set update everywhere), does one batch, records the outcome
   (``complete``, ``retry``, ``give_up``) and wakes itself again if more is due. A duplicated
   message finds nothing due; a lost one is replaced by the reconciler.
3. **Claims are leases.** Claiming sets ``state=running`` and pushes ``next_attempt_at`` one
   lease into the future; a worker killed mid-work leaves the row due again when it ends.
4. **Retries are per unit of work**: exponential backoff with full jitter from
   ``DURABLE_RETRY_BASE_SECONDS`` up to ``DURABLE_RETRY_MAX_SECONDS``, never sooner than the
   remote side's retry-after, for as long as it takes (no budget shared by a run). Only a
   permanent error gives up, and says why on the row.
5. **The reconciler** (``durable.tasks.reconcile``, beat, every ``RECONCILE_INTERVAL_SECONDS``)
   asks every registered kind of work which keys have due rows and wakes them: a lost, killed
   or dropped message costs at most one interval.

Plugging an app in (in its ``AppConfig.ready``)::

    from durable import work
    work.register(
        "imports.batch",
        due=lambda now: work.due_keys(ImportBatchWork.objects, "import_id", now),
        wake=lambda import_id: tasks.import_batches.delay(import_id),
    )

This package imports nothing of the project (only Django and Celery): every app may use it.
"""
