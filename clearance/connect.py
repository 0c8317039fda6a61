"""From a stored Credential to a ready HM client, and the shared app-token store.

* ``base_url_for(credential)``: the environment's base URL, from settings only (never user input).
* ``auth_for(credential)``: the ``clearance.hm`` auth object for the credential's auth mode.
* ``hm_client_for(credential)``: an ``HMClient`` whose app token lives in the shared cache.
* ``CacheTokenStore``: the ``TokenStore`` on Django's cache (Redis in production) with a
  single-flight lock, so N workers needing a new token make one token request, not N.
* ``check_connection(credential)``: get a fresh token and count clearances; failures explained in
  words (wrong secret, expired key, clock skew, unreachable host...). Used by ``hm_check`` and the
  "Test connection" button.

Secrets never leave this module in messages, logs or reprs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache as default_cache
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from clearance import fields
from clearance.hm import (
    AuthenticationError,
    ClientSecretAuth,
    ForbiddenError,
    HMAuth,
    HMClient,
    HMConnectionError,
    HMError,
    HMServerError,
    HMTimeout,
    InvalidResponseError,
    PrivateKeyAuth,
    RateLimited,
    ServiceAccountAuth,
    Token,
)
from clearance.models import Credential

logger = logging.getLogger(__name__)

TOKEN_KEY_PREFIX = "hm-token"


class CredentialIncomplete(ValueError):
    """The credential lacks something its auth mode needs (message in words, no secrets)."""


# --- base URL and auth ----------------------------------------------------------------------------


def base_url_for(credential: Credential) -> str:
    """The HM base URL of the credential's environment, from settings (never from the user)."""
    urls = {
        Credential.Environment.PRODUCTION: settings.HM_PRODUCTION_BASE_URL,
        Credential.Environment.SANDBOX: settings.HM_SANDBOX_BASE_URL,
        Credential.Environment.SIMULATOR: settings.HM_SIMULATOR_BASE_URL,
    }
    try:
        return urls[credential.environment].rstrip("/")
    except KeyError:
        raise CredentialIncomplete(
            f"Unknown environment {credential.environment!r} on credential {credential.name!r}."
        ) from None


def auth_for(credential: Credential) -> HMAuth:
    """The auth object for the credential's mode; CredentialIncomplete says what is missing."""
    mode = credential.auth_mode
    missing: list[str] = []

    def need(value: str, label: str) -> str:
        if not value:
            missing.append(label)
        return value

    if mode == Credential.AuthMode.CLIENT_SECRET:
        client_id = need(credential.client_id, "the OAuth client id")
        secret = need(credential.client_secret, "the client secret")
        _raise_missing(credential, missing)
        return ClientSecretAuth(client_id=client_id, client_secret=secret)
    if mode == Credential.AuthMode.PRIVATE_KEY:
        client_id = need(credential.client_id, "the OAuth client id")
        key_id = need(credential.private_key_id, "the private key id")
        pem = need(credential.private_key, "the private key")
        _raise_missing(credential, missing)
        try:
            return PrivateKeyAuth(client_id=client_id, private_key_pem=pem, private_key_id=key_id)
        except ValueError as exc:
            raise CredentialIncomplete(f"{exc} Upload the key again.") from None
    if mode == Credential.AuthMode.SERVICE_ACCOUNT:
        key_id = need(credential.service_account_key_id, "the service account API key id")
        pem = need(credential.private_key, "the private key")
        _raise_missing(credential, missing)
        try:
            return ServiceAccountAuth(
                api_key_id=key_id,
                private_key_pem=pem,
                client_id=credential.client_id or None,
                client_secret=credential.client_secret or None,
            )
        except ValueError as exc:
            raise CredentialIncomplete(f"{exc} Upload the key again.") from None
    raise CredentialIncomplete(f"Unknown authentication mode {mode!r}.")


def _raise_missing(credential: Credential, missing: list[str]) -> None:
    if missing:
        raise CredentialIncomplete(
            f"Credential {credential.name!r} is missing {', '.join(missing)}."
        )


def secret_version(credential: Credential, auth: HMAuth | None = None) -> str:
    """Changes whenever the base URL, the identity or any secret of the credential changes.

    A hash of the auth identity (itself holding only a fingerprint of the secret), so a replaced
    secret gets a new cache key and the token issued for the old one is never used again.
    """
    auth = auth or auth_for(credential)
    material = f"{base_url_for(credential)}\x00{auth.cache_identity()}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def token_key_for(credential: Credential, auth: HMAuth | None = None) -> str:
    return f"{TOKEN_KEY_PREFIX}:{credential.public_id}:{secret_version(credential, auth)}"


def _now() -> datetime:
    """The clock our HM clients sign assertions with (tests shift it to provoke clock skew)."""
    return datetime.now(UTC)


def hm_client_for(
    credential: Credential,
    *,
    token_store: object | None = None,
    session=None,
) -> HMClient:
    """A ready ``HMClient`` for the credential; its app token is shared through the cache."""
    auth = auth_for(credential)
    return HMClient(
        base_url_for(credential),
        auth,
        token_store=token_store if token_store is not None else CacheTokenStore(),
        session=session,
        timeout=(settings.HM_CONNECT_TIMEOUT, settings.HM_READ_TIMEOUT),
        token_key=token_key_for(credential, auth),
        clock=lambda: _now(),
    )


def webhook_url_for(credential: Credential) -> str:
    """Where HM must send this credential's webhooks (set it in the HM console)."""
    from django.urls import reverse

    path = reverse("clearance:webhook_high_mobility", args=[credential.public_id])
    return f"{settings.SITE_URL}{path}"


# --- the shared token store -----------------------------------------------------------------------


_RELEASE_SCRIPT = """
if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end
return 0
"""


class LockTimeout(HMTimeout):
    """Waited too long for another worker to renew the token."""

    default_message = "Another worker is renewing the High Mobility token and has not finished."


class CacheTokenStore:
    """``TokenStore`` on Django's cache, with a single-flight lock around renewals.

    The lock is ``cache.add(lock_key, owner, timeout)``: atomic on Redis (``SET NX EX``) and on
    the in-memory cache; the file cache cannot add atomically, so there a ``flock`` on a file
    under ``var/`` does it (web and workers on one machine). A holder that dies releases by
    expiry (``lock_timeout``). Waiters poll every ``poll_interval`` seconds; when the lock is
    released they re-check the store and find the new token (that is ``HMClient.get_token``'s
    double-checked pattern), so only the first caller asks HM.

    Tokens are stored Fernet-encrypted (FIELD_ENCRYPTION_KEYS) and expire from the cache with
    the token itself.
    """

    def __init__(
        self,
        cache=None,
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

    # TokenStore protocol ------------------------------------------------------------------

    def get(self, key: str) -> Token | None:
        raw = self.cache.get(key)
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
        self.cache.set(key, fields.encrypt(json.dumps(token.to_dict())), timeout=int(remaining))

    def delete(self, key: str) -> None:
        self.cache.delete(key)

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        if self._file_based():
            with self._file_lock(key):
                yield
            return
        lock_key = f"{key}:lock"
        # An int: Django's Redis cache stores ints as plain digits, so Redis can compare it.
        owner = uuid.uuid4().int >> 65
        acquired = self._acquire(lock_key, owner)
        try:
            yield
        finally:
            if acquired:
                self._release(lock_key, owner)

    # internals ----------------------------------------------------------------------------

    def _acquire(self, lock_key: str, owner: int) -> bool:
        timeout = max(1, int(self.lock_timeout + 0.999))
        deadline = time.monotonic() + self.wait_timeout
        while True:
            if self.cache.add(lock_key, owner, timeout=timeout):
                return True
            if time.monotonic() >= deadline:
                raise LockTimeout()
            time.sleep(self.poll_interval)

    def _release(self, lock_key: str, owner: int) -> None:
        """Delete the lock only if it is still ours (it may have expired and been re-taken)."""
        from django.core.cache.backends.redis import RedisCache

        if isinstance(self.cache, RedisCache):
            full_key = self.cache.make_and_validate_key(lock_key)
            client = self.cache._cache.get_client(full_key, write=True)
            client.eval(_RELEASE_SCRIPT, 1, full_key, str(owner))  # atomic compare-and-delete
            return
        if self.cache.get(lock_key) == owner:
            self.cache.delete(lock_key)

    def _file_based(self) -> bool:
        from django.core.cache.backends.filebased import FileBasedCache

        return isinstance(self.cache, FileBasedCache)

    @contextmanager
    def _file_lock(self, key: str) -> Iterator[None]:
        import fcntl

        folder = Path(settings.VAR_DIR) / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        deadline = time.monotonic() + self.wait_timeout
        with (folder / f"{name}.lock").open("a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout() from None
                    time.sleep(self.poll_interval)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def forget_token(credential: Credential) -> None:
    """Drop the cached app token (e.g. after HM refused it for good)."""
    with suppress(CredentialIncomplete):
        default_cache.delete(token_key_for(credential))


# --- connection check -----------------------------------------------------------------------------


@dataclass
class ConnectionCheck:
    ok: bool
    message: str
    kind: str = "ok"  # ok | incomplete | wrong_secret | expired_key | clock_skew | unreachable ...
    base_url: str = ""
    token_expires_in: int | None = None
    scopes: list[str] = field(default_factory=list)
    clearances: int | None = None
    by_status: dict[str, int] = field(default_factory=dict)


def check_connection(
    credential: Credential, *, client_factory: Callable[..., HMClient] | None = None
) -> ConnectionCheck:
    """Ask HM for a brand-new token, then list the fleet's clearances; explain what failed."""
    try:
        base_url = base_url_for(credential)
    except CredentialIncomplete as exc:
        return ConnectionCheck(False, str(exc), kind="incomplete")
    host = urlsplit(base_url).netloc or base_url
    try:
        from clearance.hm import InMemoryTokenStore

        # A private store: this check must make a real token request, not reuse a cached token.
        factory = client_factory or hm_client_for
        client = factory(credential, token_store=InMemoryTokenStore())
    except CredentialIncomplete as exc:
        return ConnectionCheck(False, str(exc), kind="incomplete", base_url=base_url)
    except ImproperlyConfigured as exc:
        return ConnectionCheck(False, str(exc), kind="undecryptable", base_url=base_url)
    with client:
        try:
            token = client.get_token()
        except HMError as exc:
            kind, message = explain_token_failure(exc, credential, host)
            if kind == "not_authorized" and credential.auth_mode != "client_secret":
                # HM's words did not say why; a signed assertion fails when our clock is off, so
                # compare our clock with the server's Date header.
                skew = measure_clock_skew(base_url)
                if skew is not None and abs(skew) > CLOCK_SKEW_TOLERANCE:
                    kind, message = (
                        "clock_skew",
                        (
                            f"This server's clock is {abs(skew):.0f} s "
                            f"{'ahead of' if skew > 0 else 'behind'} High Mobility's, so the signed "
                            "request looks invalid to HM. Synchronise the clock (NTP) and try again."
                        ),
                    )
            return ConnectionCheck(False, message, kind=kind, base_url=base_url)
        expires_in = int((token.expires_at - client.now()).total_seconds())
        try:
            vehicles = client.list_clearances()
        except HMError as exc:
            kind, message = explain_api_failure(exc, host)
            return ConnectionCheck(
                False,
                f"Got a token, but listing the fleet failed: {message}",
                kind=kind,
                base_url=base_url,
                token_expires_in=expires_in,
                scopes=sorted(token.scopes),
            )
    by_status = dict(sorted(Counter(str(v.status) for v in vehicles).items()))
    count = len(vehicles)
    summary = ", ".join(f"{n} {status}" for status, n in by_status.items())
    message = f"Connected to {host}. HM knows {count} vehicle{'s' if count != 1 else ''}" + (
        f" ({summary})." if summary else "."
    )
    return ConnectionCheck(
        True,
        message,
        base_url=base_url,
        token_expires_in=expires_in,
        scopes=sorted(token.scopes),
        clearances=count,
        by_status=by_status,
    )


CLOCK_SKEW_TOLERANCE = 30  # seconds; HM documents ±30 s for assertion iat


def measure_clock_skew(base_url: str) -> float | None:
    """Seconds our clock is ahead of the server's (negative: behind), from its Date header."""
    from email.utils import parsedate_to_datetime

    import requests

    try:
        response = requests.head(
            base_url + "/v1/access_tokens",
            timeout=settings.HM_CONNECT_TIMEOUT,
            allow_redirects=False,
        )
        server = parsedate_to_datetime(response.headers["Date"])
    except (requests.RequestException, KeyError, TypeError, ValueError):
        return None
    return (_now() - server).total_seconds()


def explain_token_failure(exc: HMError, credential: Credential, host: str) -> tuple[str, str]:
    """(kind, words) for a failed token request. HM's own words are kept; secrets never are."""
    said = (exc.detail or "").lower()
    hm_words = f' High Mobility said: "{exc.detail}".' if exc.detail else ""
    if isinstance(exc, HMTimeout):
        return "timeout", (
            f"{host} did not answer in time. It may be overloaded or blocked by a firewall; "
            "try again in a minute."
        )
    if isinstance(exc, HMConnectionError):
        return "unreachable", (
            f"Could not reach {host}. Check this server's network access, DNS and proxy "
            "settings, and that the environment's base URL is right."
        )
    if isinstance(exc, RateLimited):
        return "rate_limited", "High Mobility is rate-limiting this application; try again shortly."
    if isinstance(exc, HMServerError):
        return "server_error", (
            f"High Mobility had an internal problem (HTTP {exc.status_code}); try again later."
        )
    if isinstance(exc, AuthenticationError):
        if "expired" in said:
            return "expired_key", (
                "The private key has expired. Create a new key in the High Mobility console, "
                "download its JSON file and upload it here." + hm_words
            )
        if "iat" in said or "time window" in said or "clock" in said:
            return "clock_skew", (
                "High Mobility refused the signed request because of the time in it: this "
                "server's clock is probably wrong. Synchronise it (NTP) and try again." + hm_words
            )
        if "client_secret" in said:
            return "wrong_secret", (
                "The client secret is wrong. Copy it again from the High Mobility console "
                f"({credential.get_environment_display()} app) and replace it here." + hm_words
            )
        if "client_id" in said:
            return "wrong_client_id", (
                "High Mobility does not know this OAuth client id. Check it in the console and "
                "that the credential's environment (production or sandbox) matches." + hm_words
            )
        if "unknown key" in said or "signature" in said:
            return "wrong_key", (
                "High Mobility does not accept this private key: the key id does not match the "
                "key, or the key was deleted in the console. Upload the key file again." + hm_words
            )
        return "not_authorized", "High Mobility did not accept the credentials." + hm_words
    if isinstance(exc, InvalidResponseError):
        return "invalid_response", (
            f"{host} answered, but not like High Mobility. Check the environment's base URL."
        )
    return "error", f"{exc.message}"


def explain_api_failure(exc: HMError, host: str) -> tuple[str, str]:
    if isinstance(exc, ForbiddenError):
        return "forbidden", (
            "the application is not allowed to use fleet clearance (check the app's scopes and "
            "that a fleet is linked to it in the console)."
        )
    if isinstance(exc, HMConnectionError):
        return "unreachable", f"could not reach {host}."
    if isinstance(exc, HMTimeout):
        return "timeout", f"{host} did not answer in time."
    return "error", exc.message
