"""clients.py, token_store.py, locks.py: base URLs from settings, auth per mode, the shared token
store and its lock."""

import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import responses
from django.core.cache import cache, caches
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.locmem import LocMemCache

from clearance import clients
from clearance.clients import (
    CredentialIncomplete,
    auth_for,
    base_url_for,
    hm_client_for,
    token_key_for,
)
from clearance.hm import ClientSecretAuth, PrivateKeyAuth, ServiceAccountAuth, Token
from clearance.locks import LockTimeout
from clearance.services.credentials import set_secret
from clearance.services.webhooks import webhook_url_for
from clearance.token_store import CacheTokenStore
from tests.clearance.credential_helpers import p256_pem
from tests.factories import CredentialFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


def test_base_url_comes_from_settings_per_environment(settings):
    settings.HM_PRODUCTION_BASE_URL = "https://prod.example"
    settings.HM_SANDBOX_BASE_URL = "https://sandbox.example/"
    settings.HM_SIMULATOR_BASE_URL = "http://127.0.0.1:9/simulator"
    assert base_url_for(CredentialFactory(environment="production")) == "https://prod.example"
    assert base_url_for(CredentialFactory(environment="sandbox")) == "https://sandbox.example"
    assert (
        base_url_for(CredentialFactory(environment="simulator")) == "http://127.0.0.1:9/simulator"
    )


def test_auth_for_each_mode():
    pem = p256_pem()
    secret = auth_for(CredentialFactory(client_id="cid", client_secret="sec"))
    assert isinstance(secret, ClientSecretAuth) and secret.client_id == "cid"
    key = auth_for(
        CredentialFactory(
            auth_mode="private_key", client_id="cid", private_key_id="kid", private_key=pem
        )
    )
    assert isinstance(key, PrivateKeyAuth) and key.private_key_id == "kid"
    legacy = auth_for(
        CredentialFactory(
            auth_mode="service_account",
            client_id="",
            client_secret="",
            service_account_key_id="sa",
            private_key=pem,
        )
    )
    assert isinstance(legacy, ServiceAccountAuth) and legacy.api_key_id == "sa"
    assert legacy.client_id is None


def test_auth_for_says_what_is_missing_without_secrets():
    credential = CredentialFactory(auth_mode="private_key", client_id="cid", private_key_id="")
    with pytest.raises(CredentialIncomplete) as info:
        auth_for(credential)
    assert "the private key id" in str(info.value) and "the private key" in str(info.value)
    assert "not-a-real-secret" not in str(info.value)


def test_hm_client_for_uses_settings_timeouts_and_the_cache_store(settings):
    settings.HM_CONNECT_TIMEOUT = 2.5
    settings.HM_READ_TIMEOUT = 7.0
    credential = CredentialFactory()
    client = hm_client_for(credential)
    assert client.base_url == settings.HM_SIMULATOR_BASE_URL
    assert client.timeout == (2.5, 7.0)
    assert isinstance(client.token_store, CacheTokenStore)
    assert client.token_key == token_key_for(credential)
    assert "not-a-real-secret" not in repr(client) + client.token_key


def test_webhook_url(settings):
    settings.SITE_URL = "https://fleet.example.com"
    credential = CredentialFactory()
    assert (
        webhook_url_for(credential)
        == f"https://fleet.example.com/webhooks/high-mobility/{credential.public_id}/"
    )


def test_token_key_changes_when_a_secret_is_replaced():
    credential = CredentialFactory(client_secret="first")
    before = token_key_for(credential)
    assert str(credential.public_id) in before
    set_secret(credential, "client_secret", "second")
    credential.save()
    credential.refresh_from_db()
    after = token_key_for(credential)
    assert after != before
    assert "first" not in before and "second" not in after
    # Another credential with the same secret has its own key.
    other = CredentialFactory(client_id=credential.client_id, client_secret="second")
    assert token_key_for(other) != after


# --- the store ----------------------------------------------------------------------------------


def _token(seconds=300, value="tok-abc"):
    return Token(value, datetime.now(UTC) + timedelta(seconds=seconds), "fleet:clearance")


def test_store_round_trip_encrypts_and_expires_with_the_token():
    store = CacheTokenStore()
    store.set("k1", _token(120))
    raw = cache.get("k1")
    assert "tok-abc" not in raw  # encrypted in the cache (Redis in production)
    got = store.get("k1")
    assert got.access_token == "tok-abc" and got.scope == "fleet:clearance"
    if hasattr(cache, "_cache") and hasattr(cache._cache, "get_client"):
        ttl = cache._cache.get_client("k1").ttl(cache.make_and_validate_key("k1"))
        assert 100 < ttl <= 120
    store.set("k2", _token(0))  # already expired: not stored
    assert store.get("k2") is None
    cache.set("k3", "garbage")
    assert store.get("k3") is None


def test_lock_is_exclusive_and_released():
    store = CacheTokenStore(lock_timeout=5, wait_timeout=0.3, poll_interval=0.02)
    with store.lock("k"):
        other = CacheTokenStore(lock_timeout=5, wait_timeout=0.3, poll_interval=0.02)
        started = time.monotonic()
        with pytest.raises(LockTimeout), other.lock("k"):
            pass
        assert time.monotonic() - started >= 0.3
    with store.lock("k"):  # released, so it can be taken again at once
        pass


def test_a_dead_holder_releases_by_expiry():
    # Redis when configured; the file cache locks with flock instead (released when a process dies).
    shared = caches["default"]
    if isinstance(shared, FileBasedCache):
        shared = LocMemCache("dead-holder", {})
    store = CacheTokenStore(shared, lock_timeout=1, wait_timeout=3, poll_interval=0.05)
    assert shared.add("k:lock", "a-worker-that-died", timeout=1)
    started = time.monotonic()
    with store.lock("k"):
        waited = time.monotonic() - started
    assert 0.5 < waited < 3


def _single_flight(store_factory, workers=8):
    """N threads with their own HMClient (own session) share one store: one token request."""
    credential = CredentialFactory(client_secret="shh")
    calls = []
    guard = threading.Lock()

    def token_endpoint(request):
        with guard:
            calls.append(json.loads(request.body))
        time.sleep(0.3)  # a slow HM makes concurrent renewals likely
        body = {
            "access_token": f"token-{len(calls)}",
            "expires_in": 300,
            "scope": "fleet:clearance",
        }
        return 200, {}, json.dumps(body)

    tokens, errors = [], []
    barrier = threading.Barrier(workers)

    def worker():
        try:
            client = hm_client_for(credential, token_store=store_factory())
            barrier.wait()
            tokens.append(client.get_token().access_token)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with responses.RequestsMock() as mocked:
        mocked.add_callback(
            responses.POST, f"{base_url_for(credential)}/v1/access_tokens", token_endpoint
        )
        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    assert not errors, errors
    assert len(calls) == 1
    assert tokens == ["token-1"] * workers


def test_single_flight_on_the_configured_cache():
    _single_flight(lambda: CacheTokenStore(poll_interval=0.02))


def test_single_flight_on_the_file_cache(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    file_cache = FileBasedCache(str(tmp_path / "cache"), {})
    _single_flight(lambda: CacheTokenStore(file_cache, poll_interval=0.02))


def test_single_flight_on_the_memory_cache():
    memory = LocMemCache("single-flight", {})
    _single_flight(lambda: CacheTokenStore(memory, poll_interval=0.02))


def test_a_replaced_secret_never_reuses_the_old_token():
    credential = CredentialFactory(client_secret="old")
    base = base_url_for(credential)
    with responses.RequestsMock() as mocked:
        mocked.add(
            responses.POST,
            f"{base}/v1/access_tokens",
            json={"access_token": "for-old", "expires_in": 300},
        )
        assert hm_client_for(credential).get_token().access_token == "for-old"
        assert hm_client_for(credential).get_token().access_token == "for-old"  # cached
        assert len(mocked.calls) == 1
        set_secret(credential, "client_secret", "new")
        credential.save()
        mocked.replace(
            responses.POST,
            f"{base}/v1/access_tokens",
            json={"access_token": "for-new", "expires_in": 300},
        )
        assert hm_client_for(credential).get_token().access_token == "for-new"
        assert len(mocked.calls) == 2


def test_clock_used_for_assertions_is_ours(monkeypatch):
    shifted = datetime(2030, 1, 1, tzinfo=UTC)
    monkeypatch.setattr(clients, "_now", lambda: shifted)
    assert hm_client_for(CredentialFactory()).now() == shifted


def test_the_shown_webhook_url_is_the_receiver(client, settings):
    from urllib.parse import urlsplit

    from clearance.webhooks import signature_for

    settings.SITE_URL = "https://fleet.example.com"
    credential = CredentialFactory(webhook_secret="hook-secret")
    path = urlsplit(webhook_url_for(credential)).path
    body = b'{"event": {"type": "ping"}}'
    unsigned = client.post(path, body, content_type="application/json")
    assert unsigned.status_code == 401
    signed = client.post(
        path,
        body,
        content_type="application/json",
        headers={"X-HM-Signature-256": signature_for("hook-secret", body)},
    )
    assert signed.status_code == 200


def test_forget_token_drops_the_cached_token():
    credential = CredentialFactory()
    store = CacheTokenStore()
    store.set(token_key_for(credential), _token())
    assert store.get(token_key_for(credential)) is not None
    clients.forget_token(credential)
    assert store.get(token_key_for(credential)) is None
    clients.forget_token(CredentialFactory(client_id=""))  # incomplete: nothing to forget, no error


def test_release_never_deletes_a_lock_someone_else_took():
    # Our lock expired while we worked and another worker took it: our release leaves theirs.
    shared = caches["default"]
    if isinstance(shared, FileBasedCache):
        shared = LocMemCache("release", {})
    store = CacheTokenStore(shared, lock_timeout=5, wait_timeout=1, poll_interval=0.02)
    with store.lock("k"):
        shared.set("k:lock", 12345, timeout=30)  # someone else's
    assert shared.get("k:lock") == 12345
    with pytest.raises(LockTimeout), store.lock("k"):
        pass
    shared.delete("k:lock")


@pytest.mark.parametrize(("server_behind", "kind"), [(300, "clock_skew"), (2, "not_authorized")])
def test_unexplained_assertion_refusal_checks_the_clock_against_the_server(server_behind, kind):
    from email.utils import format_datetime

    from clearance.services.connection_check import check_connection

    credential = CredentialFactory(
        auth_mode="private_key", client_id="cid", private_key_id="kid", private_key=p256_pem()
    )
    base = base_url_for(credential)
    server_now = datetime.now(UTC) - timedelta(seconds=server_behind)
    with responses.RequestsMock() as mocked:
        mocked.add(
            responses.POST,
            f"{base}/v1/access_tokens",
            status=400,
            json={"error": "invalid_client", "error_description": "client_assertion is invalid"},
        )
        mocked.add(
            responses.HEAD,
            f"{base}/v1/access_tokens",
            status=405,
            headers={"Date": format_datetime(server_now, usegmt=True)},
        )
        result = check_connection(credential)
    assert not result.ok and result.kind == kind
    if kind == "clock_skew":
        assert re.search(r"\b(299|300|301) s ahead of", result.message), result.message
    else:
        assert 'High Mobility said: "client_assertion is invalid"' in result.message
