"""The owners' API tokens page and the API's reference page."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from api import tokens
from api.forms import TokenForm
from api.models import ApiToken
from organizations.access import get_object_for_user, require_role
from organizations.models import Role


@require_http_methods(["GET", "POST"])
def token_list(request):
    membership = require_role(request, Role.OWNER)
    organization = membership.organization
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST":
        if form.is_valid():
            token, text = tokens.create_token(
                organization,
                name=form.cleaned_data["name"],
                scope=form.cleaned_data["scope"],
                expires_at=form.expires_at,
                by=request.user,
            )
            created = {"token": token, "text": text}
            form = TokenForm()
        else:
            messages.error(request, "No token was created: see the form below.")
    rows = (
        ApiToken.objects.filter(organization=organization)
        .select_related("created_by", "revoked_by")
        .order_by("revoked_at", "-created_at")
    )
    return render(request, "api/tokens.html", {"tokens": rows, "form": form, "created": created})


@require_POST
def token_revoke(request, public_id):
    token = get_object_for_user(request, ApiToken, role=Role.OWNER, public_id=public_id)
    if tokens.revoke_token(token, by=request.user):
        messages.success(request, f"The token “{token.name}” is revoked; it stops working at once.")
    return redirect(reverse("api:tokens"))


@login_not_required
def reference(request):
    """The API's interactive reference (Swagger UI from our own static files)."""
    settings_json = json.dumps({"url": reverse("api-v1:openapi-json"), "layout": "BaseLayout"})
    return render(request, "api/reference.html", {"swagger_settings": settings_json})
