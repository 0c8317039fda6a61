"""A member's own notification settings, and the unsubscribe link of emails (no login)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from notifications import preferences
from notifications.forms import NotificationSettingsForm
from notifications.models import EmailMode
from organizations.access import require_membership


@require_http_methods(["GET", "POST"])
def my_settings(request):
    """Time zone, digest hour, and for each rule: email immediately, in the digest, or not."""
    membership = require_membership(request)
    current = preferences.settings_for(request.user)
    form = NotificationSettingsForm(request.POST or None, instance=current)
    rows = preferences.rules_with_choices(request.user, membership.organization)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
            for rule, mode, _chosen in rows:
                wanted = request.POST.get(f"mode-{rule.public_id}", mode)
                if wanted in EmailMode.values and wanted != mode:
                    preferences.choose(request.user, rule, wanted)
        messages.success(request, "Your notification settings are saved.")
        return redirect("notifications:settings")
    zone = preferences.zone(current.time_zone)
    next_digest = preferences.last_digest_slot(
        current.time_zone, current.digest_hour, timezone.now()
    ) + timedelta(days=1)
    return render(
        request,
        "notifications/settings.html",
        {
            "form": form,
            "rows": rows,
            "modes": EmailMode.choices,
            "next_digest": next_digest,
            "user_zone": zone,
            "has_email": bool(request.user.email),
        },
    )


@login_not_required
@csrf_exempt  # RFC 8058: mail clients POST here without a session; the signed token is the proof
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token: str):
    """GET asks (link scanners must not unsubscribe anyone); POST switches the email off."""
    found = preferences.read_unsubscribe_token(token)
    if found is None:
        raise Http404("This unsubscribe link is not valid.")
    user_id, rule_ids = found
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise Http404("This unsubscribe link is not valid.")
    if request.method == "POST":
        done = preferences.unsubscribe(user_id, rule_ids)
        return render(request, "notifications/unsubscribe.html", {"done": done, "posted": True})
    rules = list(
        preferences.rules_of_token(user_id, rule_ids)
        .select_related("organization")
        .order_by("name")
    )
    return render(request, "notifications/unsubscribe.html", {"rules": rules, "posted": False})
