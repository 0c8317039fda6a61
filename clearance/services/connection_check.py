"""The "Test connection" check: a brand-new token, then the fleet's clearances, and what
failed explained in words (wrong secret, expired key, clock skew, unreachable host...).

Used by the credential pages' background task and ``manage.py hm_check``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from clearance import clients
from clearance.clients import CredentialIncomplete
from clearance.hm import (
    AuthenticationError,
    ForbiddenError,
    HMClient,
    HMConnectionError,
    HMError,
    HMServerError,
    HMTimeout,
    InMemoryTokenStore,
    InvalidResponseError,
    RateLimited,
)
from clearance.models import Credential


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
        base_url = clients.base_url_for(credential)
    except CredentialIncomplete as exc:
        return ConnectionCheck(False, str(exc), kind="incomplete")
    host = urlsplit(base_url).netloc or base_url
    try:
        # A private store: this check must make a real token request, not reuse a cached token.
        factory = client_factory or clients.hm_client_for
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
    try:
        response = requests.head(
            base_url + "/v1/access_tokens",
            timeout=settings.HM_CONNECT_TIMEOUT,
            allow_redirects=False,
        )
        server = parsedate_to_datetime(response.headers["Date"])
    except (requests.RequestException, KeyError, TypeError, ValueError):
        return None
    return (clients._now() - server).total_seconds()


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
