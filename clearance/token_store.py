"""The HM app token, shared by every web and worker process through Django's cache.

N workers that need a new token make one token request, not N: renewals run under
``clearance.locks.cache_lock``, and waiters re-check the store once the lock is free and find
the new token (``HMClient.get_token``'s double-checked pattern). Tokens are stored
Fernet-encrypted (FIELD_ENCRYPTION_KEYS) and expire from the cache with the token itself.

The cache is a convenience, never a dependency: when it cannot be reached (Redis down), the
store behaves as empty and unlocked, so each process fetches its own token and HM work goes on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import RedisError

from clearance import fields
from clearance.hm import Token
from clearance.locks import cache_lock

logger = logging.getLogger(__name__)

# What an unreachable cache raises (Redis down, a refused connection, a timeout).
CACHE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)


class CacheTokenStore:
    """``clearance.hm``'s ``TokenStore`` on Django's cache, with a single-flight lock."""

    def __init__(
        self,
        cache: Any = None,
        *,
        lock_timeout: float | None = None,
        wait_timeout: float | None = None,
        poll_interval: float = 0.05,
    ) -> None:
        # The backend itself (not the `cache` proxy), so the lock can see what kind it is.
        self.cache = cache if cache is not None else caches["default"]
        request_budget = settings.HM_CONNECT_TIMEOUT + settings.HM_READ_TIMEOUT + 5
        self.lock_timeout = lock_timeout or request_budget
        self.wait_timeout = wait_timeout or self.lock_timeout + 5
        self.poll_interval = poll_interval

    def __repr__(self) -> str:
        return f"CacheTokenStore({type(self.cache).__name__})"

    def get(self, key: str) -> Token | None:
        try:
            raw = self.cache.get(key)
        except CACHE_ERRORS:
            logger.warning("Token cache unavailable; fetching a token without it")
            return None
        if not raw:
            return None
        try:
            return Token.from_dict(json.loads(fields.decrypt(raw)))
        except (ValueError, KeyError, TypeError, ImproperlyConfigured):
            # Unreadable (e.g. encryption keys rotated away): as if there were none.
            logger.warning("Discarding an unreadable cached HM token")
            return None

    def set(self, key: str, token: Token) -> None:
        remaining = (token.expires_at - datetime.now(UTC)).total_seconds()
        if remaining <= 1:
            return
        with suppress(*CACHE_ERRORS):
            self.cache.set(key, fields.encrypt(json.dumps(token.to_dict())), timeout=int(remaining))

    def delete(self, key: str) -> None:
        with suppress(*CACHE_ERRORS):
            self.cache.delete(key)

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        with ExitStack() as stack:
            try:
                stack.enter_context(
                    cache_lock(
                        key,
                        timeout=self.lock_timeout,
                        wait=self.wait_timeout,
                        poll_interval=self.poll_interval,
                        cache=self.cache,
                    )
                )
            except CACHE_ERRORS:
                logger.warning("Token cache unavailable; renewing the token without its lock")
            yield
