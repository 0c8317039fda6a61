"""URLconf for the error-page tests: the real one plus views that fail on purpose."""

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.urls import path

from fleetportal.urls import handler403
from fleetportal.urls import urlpatterns as site_urlpatterns

__all__ = ["handler403", "urlpatterns"]


@login_not_required
def boom(request):
    raise RuntimeError("boom: the database said no")


def denied_by_a_library(request):
    # Raised outside our packages: the message may be technical, so the page must not show it.
    raise PermissionDenied("row lock 0x7f3a held by pid 4711")


def denied_without_reason(request):
    raise PermissionDenied


urlpatterns = [
    path("test-errors/boom/", boom),
    path("test-errors/denied-by-a-library/", denied_by_a_library),
    path("test-errors/denied/", denied_without_reason),
    *site_urlpatterns,
]
