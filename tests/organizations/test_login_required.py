"""Every page needs a login, except the few public endpoints listed here with their reason."""

import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

# Public on purpose: the login page, the health check for load balancers, the favicon, HM's webhook receiver
# (authenticated by its HMAC signature), the simulator (authenticates like HM, with tokens), the
# invitation link (its unguessable token is the credential; it offers to log in or sign up) and the
# unsubscribe link of notification emails (a signed token; RFC 8058 one-click, without a session).
PUBLIC_PREFIXES = (
    "login/",
    "healthz",
    "favicon.ico",
    "webhooks/",
    "simulator/",
    "notifications/unsubscribe/",
    "invitations/<str:token>/",
    # Token-authenticated (401 without one: tests/api/test_tokens.py); its schema and reference.
    "api/v1/",
)
DUMMY = {"uuid": str(uuid.uuid4()), "int": "1", "slug": "x", "str": "x", "path": "x"}


def _walk(patterns, prefix=""):
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route


def _concrete(route: str) -> str | None:
    if (
        route.startswith("^") or "(?P" in route
    ):  # regex routes (admin internals) are covered by admin/
        return None
    import re

    return "/" + re.sub(r"<(?:(\w+):)?\w+>", lambda m: DUMMY.get(m.group(1) or "str", "x"), route)


def test_all_pages_redirect_anonymous_users_to_login(client):
    routes = sorted({r for r in _walk(get_resolver().url_patterns)})
    checked = 0
    for route in routes:
        url = _concrete(route)
        if url is None or route.startswith(PUBLIC_PREFIXES) or route.startswith("admin/"):
            continue
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], (
            url,
            response.status_code,
        )
        checked += 1
    assert client.get("/admin/").status_code == 302
    assert checked >= 3
