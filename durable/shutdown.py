"""A warm shutdown that never waits for a remote call in flight.

Celery's prefork worker hears SIGTERM in its main process only; each pool process would finish
the task at hand, however long its HTTP calls take (HM's read timeout is 30 s). So the main
process passes the word on (``STOP_SIGNAL`` to every pool process) and a pool process that hears
it while inside ``interruptible()`` cuts that call short with the caller's "unclear" error: the
caller records its usual outcome (a lost answer: asked about before anything is sent again) and
the task ends within moments. Outside such a call the signal only sets the flag ``stopping()``
reads between units of work. Threads and solo pools read ``should_stop`` instead; their calls
in flight end at the client's timeouts.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import billiard
from celery import signals
from celery.worker import state as worker_state

logger = logging.getLogger(__name__)

# Not one billiard resets in pool processes (it turns SIGTERM, SIGUSR1/2 and others into an
# exit), and ignored by default, so a pool process still starting up is not killed by it.
STOP_SIGNAL = signal.SIGURG

_asked_to_stop = False
_in_flight = 0


class _Cut(Exception):
    """Raised by the signal handler inside ``interruptible()`` only; never escapes it."""


def stopping() -> bool:
    """Whether this worker (or the pool process this runs in) was asked to stop."""
    return bool(_asked_to_stop or worker_state.should_stop or worker_state.should_terminate)


@contextmanager
def interruptible(error: Callable[[], BaseException]) -> Iterator[None]:
    """Run a blocking call that a warm shutdown cuts short: raises ``error()`` when the stop
    comes during the call, or came before it (no new call is started then)."""
    global _in_flight
    if _asked_to_stop:
        raise error()
    try:  # a cut anywhere in here, even while counting, becomes the caller's error
        _in_flight += 1
        try:
            yield
        finally:
            _in_flight -= 1
    except _Cut:
        raise error() from None


def _heard_stop(signum: int, frame: FrameType | None) -> None:
    global _asked_to_stop
    first = not _asked_to_stop
    _asked_to_stop = True
    if first and _in_flight:
        # A blocking socket call sees EINTR, runs this handler and raises what it raises. Only
        # the first word cuts: a repeated one must not land in the caller's bookkeeping.
        raise _Cut()


def listen_in_pool_process(**_: Any) -> None:
    """In each new pool process (``worker_process_init``): hear the main process's word."""
    global _asked_to_stop
    _asked_to_stop = False
    signal.signal(STOP_SIGNAL, _heard_stop)


def tell_pool_processes(sig: str = "", how: str = "", **_: Any) -> None:
    """In the main process (``worker_shutting_down``): pass a stop on to the pool processes."""
    for child in billiard.active_children():
        if child.pid is None:  # not started yet
            continue
        try:
            os.kill(child.pid, STOP_SIGNAL)
        except ProcessLookupError:  # gone already
            continue
    logger.info("%s shutdown (%s): pool processes told to stop", how or "Warm", sig or "signal")


def connect() -> None:
    """Wire the two halves to Celery's signals (from ``DurableConfig.ready``)."""
    signals.worker_process_init.connect(listen_in_pool_process, weak=False)
    signals.worker_shutting_down.connect(tell_pool_processes, weak=False)
