"""The notification centre: the bell in the header, the list with filters, marking read."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from notifications import preferences, selectors
from notifications.models import Notification, RuleKind
from organizations.access import require_membership

PAGE_SIZE = 50


def _user_zone(request):
    return preferences.zone(preferences.settings_for(request.user).time_zone)


@require_GET
def notification_list(request):
    membership = require_membership(request)
    flt = selectors.parse_filter(request.GET)
    rows = selectors.notifications_for(request.user, membership.organization, flt)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filter": flt,
        "kinds": RuleKind.choices,
        "rules": selectors.rules_of(membership.organization),
        "states": selectors.STATES,
        "user_zone": _user_zone(request),
        "unread": selectors.unread_count(request.user, membership.organization),
    }
    return render(request, "notifications/list.html", context)


@never_cache
@require_GET
def bell(request):
    """The bell alone, for its poll (htmx swaps it in place)."""
    require_membership(request)
    return render(request, "notifications/_bell.html")


def _back(request) -> str:
    nxt = request.POST.get("next", "")
    if nxt.startswith("/notifications/") and not nxt.startswith("//"):
        return nxt
    return reverse("notifications:list")


@require_POST
def mark_read(request, pk: int):
    membership = require_membership(request)
    Notification.objects.filter(
        pk=pk, user=request.user, organization=membership.organization, read_at__isnull=True
    ).update(read_at=timezone.now())
    return redirect(_back(request))


@require_POST
def mark_all_read(request):
    membership = require_membership(request)
    with transaction.atomic():
        Notification.objects.filter(
            user=request.user, organization=membership.organization, read_at__isnull=True
        ).update(read_at=timezone.now())
    return redirect(_back(request))


@require_GET
def open_notification(request, pk: int):
    """Follow a notification to its vehicle, marking it read on the way."""
    membership = require_membership(request)
    notification = get_object_or_404(
        Notification.objects.select_related("alert__vehicle"),
        pk=pk,
        user=request.user,
        organization=membership.organization,
    )
    if notification.read_at is None:
        Notification.objects.filter(pk=notification.pk).update(read_at=timezone.now())
    return redirect("vehicles:detail", public_id=notification.alert.vehicle.public_id)
