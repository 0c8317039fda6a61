"""Where application tokens are kept between calls.

The client asks the store for a token, and renews it under ``lock(key)`` so that concurrent
callers sharing a store make one token request, not N (single flight). The Django side plugs in a
store backed by the shared cache; ``InMemoryTokenStore`` serves one process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, runtime_checkable

from .types import Token


@runtime_checkable
class TokenStore(Protocol):
    def get(self, key: str) -> Token | None: ...

    def set(self, key: str, token: Token) -> None: ...

    def lock(self, key: str) -> AbstractContextManager[object]: ...


class InMemoryTokenStore:
    """Thread-safe, per-process store."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str) -> Token | None:
        return self._tokens.get(key)

    def set(self, key: str, token: Token) -> None:
        self._tokens[key] = token

    def delete(self, key: str) -> None:
        self._tokens.pop(key, None)

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield
