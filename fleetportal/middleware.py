"""Project-wide middleware: response headers, and the lean path of views that need no page."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, get_resolver
from django.utils.cache import patch_cache_control


class PrivatePagesMiddleware:
    """Every response to a logged-in user is ``Cache-Control: private, no-store``: fleet data
    must stay out of shared caches (a proxy) and off the disk of a shared computer, where the
    back button would show it after logout. Static files never get here (WhiteNoise answers
    them first, with its own long-lived headers); anonymous answers (/healthz, the webhook,
    the login page) are left as they are."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
        return response


class LeanPathsMiddleware:
    """Requests for a view of ``fleetportal/urls_lean.py`` go straight to it: the rest of the
    stack (sessions, authentication, CSRF, audit actor, messages, htmx, organization, axes, CSP)
    serves pages, and running it costs a webhook burst a good part of its time. Every other path
    passes on unchanged (one failed match of a short URLconf). Placed right after
    SecurityMiddleware, whose redirect and headers still apply."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.resolver = get_resolver("fleetportal.urls_lean")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            match = self.resolver.resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        request.resolver_match = match
        response: HttpResponse = match.func(request, *match.args, **match.kwargs)
        return response
