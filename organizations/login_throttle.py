"""Login throttling on top of django-axes: whose address a login comes from, the page a paused
login gets, and one log line per failed or refused login (username and address, never the
password).

django-axes counts failures per username + client IP in the database (AccessAttempt) and pauses
that pair after LOGIN_FAILURE_LIMIT failures for LOGIN_LOCKOUT_MINUTES; staff unlock it in admin.
"""

import ipaddress
import logging
import math
from datetime import datetime, timedelta

from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.db.models import Max
from django.dispatch import receiver
from django.shortcuts import render
from django.utils import timezone

log = logging.getLogger("fleetportal.login")

# Longest username repeated in a log line (the field accepts whatever a client posts).
_LOGGED_USERNAME_LENGTH = 150


def _is_ip(value: str | None) -> bool:
    try:
        ipaddress.ip_address(value or "")
    except ValueError:
        return False
    return True


def client_ip(request) -> str | None:
    """The client's address: the TCP peer, or behind TRUSTED_PROXY_COUNT reverse proxies the
    entry of X-Forwarded-For that the outermost proxy added (entries further left are whatever
    the client sent, so they are never trusted)."""
    remote = request.META.get("REMOTE_ADDR")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= proxies and _is_ip(forwarded[-proxies]):
            return forwarded[-proxies]
    return remote if _is_ip(remote) else None


def paused_until(username: str | None, ip_address: str | None) -> datetime:
    """When the pause of this username + address ends (the last counted failure + cool-off)."""
    cool_off = get_cool_off() or timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES)
    last = AccessAttempt.objects.filter(username=username, ip_address=ip_address).aggregate(
        last=Max("attempt_time")
    )["last"]
    return (last or timezone.now()) + cool_off


def _describe(until: datetime) -> dict:
    local = timezone.localtime(until)
    same_day = local.date() == timezone.localtime().date()
    return {
        "paused_until": until,
        "paused_until_text": local.strftime("%H:%M %Z" if same_day else "%d %b %Y %H:%M %Z"),
        "paused_minutes": max(1, math.ceil((until - timezone.now()).total_seconds() / 60)),
    }


def lockout_response(request, original_response=None, credentials=None):
    """The login page again, with status 429 and words saying when logging in works again."""
    username = get_client_username(request, credentials) or ""
    context = {
        "form": AuthenticationForm(request, initial={"username": username}),
        "next": request.POST.get("next", request.GET.get("next", "")),
        "paused_username": username,
        **_describe(paused_until(username, getattr(request, "axes_ip_address", None))),
    }
    return render(request, "registration/login.html", context, status=429)


@receiver(user_login_failed, dispatch_uid="fleetportal_log_failed_login")
def log_failed_login(sender, credentials, request=None, **kwargs):
    """Runs after django-axes' own receiver (axes comes first in INSTALLED_APPS), which has
    counted the failure on the request by then. `credentials` arrive with the password masked;
    only the username is used."""
    if request is None:
        return
    username = str(credentials.get("username") or "")
    shown = username[:_LOGGED_USERNAME_LENGTH]
    ip = getattr(request, "axes_ip_address", None) or client_ip(request)
    address = ip or "an unknown address"
    failures = getattr(request, "axes_failures_since_start", None)
    if getattr(request, "axes_locked_out", False):
        until = _describe(paused_until(username, ip))["paused_until_text"]
        if failures is None:
            log.warning(
                "Refused login for username %r from %s: paused until %s", shown, address, until
            )
        else:
            log.warning(
                "Failed login for username %r from %s (%s of %s): paused until %s",
                shown,
                address,
                failures,
                settings.LOGIN_FAILURE_LIMIT,
                until,
            )
    else:
        counted = f" ({failures} of {settings.LOGIN_FAILURE_LIMIT})" if failures else ""
        log.warning("Failed login for username %r from %s%s", shown, address, counted)
