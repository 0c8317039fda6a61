"""Project-wide response headers."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
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
