"""One lock across web and worker processes, on Django's cache.

``cache.add(key, owner, timeout)`` is atomic on Redis (``SET NX EX``) and on the in-memory cache;
the file cache cannot add atomically, so there a ``flock`` on a file under ``var/`` does it (web
and workers share one machine in that setup). A holder that dies releases by expiry; a waiter
that waits too long gets ``LockTimeout``, a transient error, so a task retries later.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.redis import RedisCache

from clearance.hm import HMTimeout

_RELEASE_SCRIPT = """
if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end
return 0
"""


class LockTimeout(HMTimeout):
    """Waited too long for another process to finish what it holds the lock for."""

    default_message = "Another worker is renewing the High Mobility token and has not finished."


@contextmanager
def cache_lock(
    key: str,
    *,
    timeout: float,
    wait: float,
    poll_interval: float = 0.05,
    cache: Any = None,
) -> Iterator[None]:
    """Hold ``key`` for at most ``timeout`` seconds; wait at most ``wait`` seconds for it."""
    backend = cache if cache is not None else caches["default"]
    if isinstance(backend, FileBasedCache):
        with _file_lock(key, wait=wait, poll_interval=poll_interval):
            yield
        return
    lock_key = f"{key}:lock"
    # An int: Django's Redis cache stores ints as plain digits, so Redis can compare it.
    owner = uuid.uuid4().int >> 65
    _acquire(backend, lock_key, owner, timeout=timeout, wait=wait, poll_interval=poll_interval)
    try:
        yield
    finally:
        _release(backend, lock_key, owner)


def _acquire(
    backend: Any, lock_key: str, owner: int, *, timeout: float, wait: float, poll_interval: float
) -> None:
    expires = max(1, int(timeout + 0.999))
    deadline = time.monotonic() + wait
    while not backend.add(lock_key, owner, timeout=expires):
        if time.monotonic() >= deadline:
            raise LockTimeout()
        time.sleep(poll_interval)


def _release(backend: Any, lock_key: str, owner: int) -> None:
    """Delete the lock only if it is still ours (it may have expired and been re-taken)."""
    if isinstance(backend, RedisCache):
        full_key = backend.make_and_validate_key(lock_key)
        client = backend._cache.get_client(full_key, write=True)
        client.eval(_RELEASE_SCRIPT, 1, full_key, str(owner))  # atomic compare-and-delete
        return
    if backend.get(lock_key) == owner:
        backend.delete(lock_key)


@contextmanager
def _file_lock(key: str, *, wait: float, poll_interval: float) -> Iterator[None]:
    folder = Path(settings.VAR_DIR) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(key.encode()).hexdigest()[:32]
    deadline = time.monotonic() + wait
    with (folder / f"{name}.lock").open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout() from None
                time.sleep(poll_interval)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
