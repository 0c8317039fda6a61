import functools

from django.contrib.auth.decorators import login_not_required
from django.urls import URLPattern, include, path
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import csrf_exempt

from api import views
from api.v1 import api


def _open(view):
    """API views authenticate by token, not session: no login redirect, no CSRF; and never
    cached by a proxy."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        patch_cache_control(response, private=True, no_store=True)
        return response

    return csrf_exempt(login_not_required(wrapper))


def _v1_urls():
    patterns, app_name, namespace = api.urls
    wrapped = [
        URLPattern(p.pattern, _open(p.callback), p.default_args, p.name)
        for p in patterns
        if isinstance(p, URLPattern)
    ]
    assert len(wrapped) == len(patterns), "the API has no nested routers"
    return (wrapped, app_name), namespace


app_name = "api"
urlpatterns = [
    path("settings/api-tokens/", views.token_list, name="tokens"),
    path("settings/api-tokens/<uuid:public_id>/revoke/", views.token_revoke, name="token_revoke"),
    path("api/v1/docs/", views.reference, name="reference"),
]

# Included at the root by fleetportal/urls.py (namespace "api-v1").
_patterns, _namespace = _v1_urls()
v1_urls = path("api/v1/", include(_patterns, namespace=_namespace))
