"""How background work is queued and retried: one task class, one retry policy.

Every task of the HM lifecycle, the connection check and the telemetry pulls is a
``BackgroundTask``. Work is queued one way only, ``task.delay_on_commit(*args)``: the message is
sent once the current transaction commits (at once outside one), so a worker never looks for a
row that is not there yet. A broker that cannot be reached is logged, never raised: what was
asked for is in PostgreSQL, and the periodic sync sends stuck queued clearances and applies
webhooks again. ``on_error`` lets a page tell the person who started the work instead.

Transient HM failures (timeouts, 5xx, 429) are retried by ``retry_transient`` with exponential
backoff and full jitter, never sooner than HM's own "retry after"; a busy database (SQLite's
single writer, a PostgreSQL deadlock victim) by ``retry_busy_database``, soon.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from functools import partial
from typing import Any, NoReturn

from celery.contrib.django.task import DjangoTask
from django.conf import settings
from django.db import transaction

from clearance.hm import RateLimited, TransientError

logger = logging.getLogger(__name__)

BUSY_DATABASE_RETRIES = 20


def retry_countdown(retries: int, exc: Exception | None = None) -> float:
    """Exponential backoff with full jitter, never shorter than HM's retry-after."""
    base = settings.HM_RETRY_BACKOFF_SECONDS
    cap = settings.HM_RETRY_BACKOFF_MAX_SECONDS
    delay = random.uniform(base / 2, min(cap, base * (2**retries)))
    if isinstance(exc, RateLimited) and exc.retry_after:
        delay = max(delay, exc.retry_after + random.uniform(0, base))
    return delay


class BackgroundTask(DjangoTask[Any, Any]):
    """A Celery task queued after commit and retried by the policy above."""

    def delay_on_commit(  # type: ignore[override]
        self, *args: Any, on_error: Callable[[], None] | None = None, **kwargs: Any
    ) -> None:
        """``delay(*args, **kwargs)`` once the current transaction commits."""
        transaction.on_commit(partial(self._send, self.delay, args, kwargs, on_error))

    def apply_async_on_commit(  # type: ignore[override]
        self,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        on_error: Callable[[], None] | None = None,
        **options: Any,
    ) -> None:
        """``apply_async`` (with a countdown, an expiry...) once the current transaction commits."""
        send = partial(self.apply_async, args, kwargs, **options)
        transaction.on_commit(partial(self._send, send, (), {}, on_error))

    def _send(
        self,
        send: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        on_error: Callable[[], None] | None,
    ) -> None:
        try:
            send(*args, **kwargs)
        except Exception:
            if on_error is None:
                logger.exception(
                    "Could not queue %s%r; the next sync will catch up", self.name, args
                )
                return
            logger.exception("Could not queue %s%r", self.name, args)
            on_error()

    def retry_later(self, exc: Exception | None = None, **options: Any) -> bool:
        """Retry after the backoff; False (logged) once HM_MAX_RETRIES retries are spent.

        ``options`` go to Celery's ``retry`` (e.g. ``args`` to retry only what is left)."""
        retries = self.request.retries
        if retries >= settings.HM_MAX_RETRIES:
            logger.error("%s gave up after %s retries: %s", self.name, retries, exc)
            return False
        countdown = retry_countdown(retries, exc)
        logger.info("%s: %s; retrying in %.1fs", self.name, _words(exc), countdown)
        raise self.retry(
            exc=exc, countdown=countdown, max_retries=settings.HM_MAX_RETRIES, **options
        )

    def retry_transient(self, exc: TransientError) -> bool:
        """Retry a transient HM error; False (logged) when the retries are spent."""
        return self.retry_later(exc)

    def retry_busy_database(self, exc: Exception) -> NoReturn:
        """A busy database: retry soon, a few times, then let the error through."""
        if self.request.retries >= BUSY_DATABASE_RETRIES:
            raise exc
        raise self.retry(
            exc=exc, countdown=random.uniform(0.1, 1.0), max_retries=BUSY_DATABASE_RETRIES
        )


# The options of every task that calls HM: ids in, results ignored (state lives in our rows),
# acknowledged after the work so a lost worker's task is delivered again.
HM_TASK: dict[str, Any] = {
    "base": BackgroundTask,
    "bind": True,
    "ignore_result": True,
    "acks_late": True,
}

# Wakers of durable work (durable/__init__.py): idempotent, so a message whose worker died
# (even only its child process) is delivered again instead of acknowledged and lost.
DURABLE_TASK: dict[str, Any] = {**HM_TASK, "reject_on_worker_lost": True}


def _words(exc: Exception | None) -> str:
    if exc is None:
        return "not done yet"
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__
