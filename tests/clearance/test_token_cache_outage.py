"""Redis down under the token cache: HM work goes on without it (each process fetches its own
token), instead of failing the task that needed a token."""

import socket
from datetime import UTC, datetime, timedelta

from django.core.cache.backends.redis import RedisCache

from clearance.hm import Token
from clearance.token_store import CacheTokenStore


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens


def test_an_unreachable_cache_is_an_empty_unlocked_store():
    down = RedisCache(f"redis://127.0.0.1:{_closed_port()}/0", {})
    store = CacheTokenStore(down, lock_timeout=1, wait_timeout=1)
    token = Token(
        access_token="a-token",
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    assert store.get("hm-token:x") is None
    store.set("hm-token:x", token)  # not raised
    store.delete("hm-token:x")
    entered = False
    with store.lock("hm-token:x"):
        entered = True
    assert entered
