"""The one way FleetPortal calls out to its customers' systems (outgoing webhooks).

One ``requests.Session`` per process, used like the HM client's: connect and read timeouts on
every call, no redirects followed, no proxy or ``.netrc`` taken from the environment, and
failures sorted into ``TransientError`` (the network or the receiver: try again later) and
``RefusedError`` (the URL or the address it resolves to is not allowed: the endpoint must
change). Any HTTP answer, 2xx or not, is an ``Answer``: what it means is the caller's business.

Server-side request forgery: the host is resolved here, at send time, and every address it
resolves to is checked; loopback, private, link-local, shared and reserved addresses are refused
unless ``OUTGOING_WEBHOOKS_ALLOW_PRIVATE`` (tests, ``make run``), cloud metadata addresses
always. The connection then goes to the address that was checked -- a DNS answer that changes
in between (DNS rebinding) cannot redirect it -- while TLS is still verified against the host
name. HTTPS is required when ``OUTGOING_WEBHOOKS_REQUIRE_HTTPS`` (on unless DEBUG).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from untrusted import storable

USER_AGENT = "FleetPortal-Webhooks/1"
ANSWER_KEPT = 1000  # characters of the receiver's answer kept for the delivery log

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Cloud instance metadata services (AWS, GCP, Azure, OpenStack; ECS tasks; Alibaba; AWS IPv6).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)


class OutgoingError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class TransientError(OutgoingError):
    """No answer this time (name not resolved, connection refused, timeout, TLS): retry."""


class RefusedError(OutgoingError):
    """FleetPortal will not send there (scheme, address); retrying cannot help."""


@dataclass(frozen=True)
class Answer:
    status: int
    text: str
    elapsed_ms: int

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def address_problem(address: IPAddress, *, allow_private: bool | None = None) -> str | None:
    """Why FleetPortal refuses to connect to ``address``, in words; None when it may."""
    if allow_private is None:
        allow_private = settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    if address.is_unspecified or address.is_multicast:
        return f"{address} is not a unicast address"
    if address.is_global or allow_private:
        return None
    if address.is_loopback:
        kind = "a loopback address (this machine)"
    elif address.is_link_local:
        kind = "a link-local address"
    elif address.is_private:
        kind = "a private network address"
    else:
        kind = "not a public internet address"
    return f"{address} is {kind}"


def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a webhook address (before any DNS lookup), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "This is not a valid URL."
    if parts.scheme not in ("http", "https"):
        return "The URL must start with https:// (or http:// where allowed)."
    if parts.scheme == "http" and settings.OUTGOING_WEBHOOKS_REQUIRE_HTTPS:
        return "The URL must use https://: events carry fleet data and are sent encrypted only."
    if not parts.hostname:
        return "The URL must name a host."
    if parts.username or parts.password:
        return (
            "The URL must not contain a user name or password; receivers check the signature "
            "instead."
        )
    if port == 0:
        return "The URL's port must be between 1 and 65535."
    return None


def resolve(url: str) -> tuple[str, int, list[IPAddress]]:
    """(host name, port, every address it resolves to); raises for a bad URL or address."""
    problem = url_problem(url)
    if problem:
        raise RefusedError(problem)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise TransientError(f"The host name {host} could not be resolved ({exc}).") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise RefusedError(f"{host} resolves to {problem}, where FleetPortal never sends.")
    return host, port, addresses


class _PinnedAddressAdapter(HTTPAdapter):
    """Connects to the address the caller checked (``request.pinned_address``), keeping the
    host name for the Host header, SNI and certificate verification."""

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        hostname = host_params["host"]
        host_params["host"] = str(request.pinned_address)
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = hostname
            pool_kwargs["assert_hostname"] = hostname
        return host_params, pool_kwargs


class _Session:
    """The process's one session, made on first use (after any fork)."""

    lock = threading.Lock()
    session: requests.Session | None = None

    @classmethod
    def get(cls) -> requests.Session:
        with cls.lock:
            if cls.session is None:
                session = requests.Session()
                session.trust_env = False  # no proxy, CA or .netrc from the environment
                session.headers["User-Agent"] = USER_AGENT
                adapter = _PinnedAddressAdapter(pool_connections=20, pool_maxsize=20, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                cls.session = session
            return cls.session


def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POST ``body`` to ``url`` through the checks above; the answer whatever its status."""
    host, port, addresses = resolve(url)
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    host_header = host if port == default_port else f"{host}:{port}"
    if ":" in host and port == default_port:
        host_header = f"[{host}]"
    elif ":" in host:
        host_header = f"[{host}]:{port}"
    session = _Session.get()
    request = requests.Request(
        "POST", url, data=body, headers={**headers, "Host": host_header}
    ).prepare()
    request.pinned_address = addresses[0]  # type: ignore[attr-defined]
    verify: Any = settings.OUTGOING_WEBHOOKS_CA_FILE or True
    started = time.monotonic()
    try:
        response = session.send(
            request,
            timeout=(
                settings.OUTGOING_WEBHOOKS_CONNECT_TIMEOUT,
                settings.OUTGOING_WEBHOOKS_READ_TIMEOUT,
            ),
            allow_redirects=False,
            verify=verify,
            stream=True,
        )
    except requests.exceptions.SSLError as exc:
        raise TransientError(f"The TLS connection to {host} failed: {_reason(exc)}") from None
    except requests.exceptions.Timeout:
        raise TransientError(
            f"{host} did not answer within {settings.OUTGOING_WEBHOOKS_READ_TIMEOUT:g} s."
        ) from None
    except requests.exceptions.ConnectionError as exc:
        raise TransientError(f"Could not connect to {host}: {_reason(exc)}") from None
    except requests.exceptions.RequestException as exc:
        raise TransientError(f"The request to {host} failed: {_reason(exc)}") from None
    try:
        raw = response.raw.read(ANSWER_KEPT * 4, decode_content=True) or b""
    except Exception:  # the answer's body is only kept for the log
        raw = b""
    finally:
        response.close()
    elapsed = int((time.monotonic() - started) * 1000)
    # Whatever charset it claims; a NUL would make PostgreSQL refuse the whole row.
    text = storable(raw.decode("utf-8", errors="replace"))[:ANSWER_KEPT]
    return Answer(response.status_code, text, elapsed)


def _reason(exc: Exception) -> str:
    """The innermost cause of a requests error, short (no URL with a query string in it)."""
    cause: BaseException = exc
    for _ in range(10):
        inner = cause.__cause__ or cause.__context__
        if inner is None:
            break
        cause = inner
    words = str(cause) or type(cause).__name__
    return words.split(": ", 1)[-1][:200]
