"""Webhook endpoints (owners only): list, add (secret shown once), delivery log, test event,
redeliver, rotate the secret, turn on and off, delete."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clearance.views import hide_secrets_from_error_reports
from durable.models import ACTIVE_STATES, WorkState
from notifications import endpoints, outgoing, signing
from notifications.forms import WebhookEndpointForm
from notifications.models import EventDelivery, WebhookEndpoint
from organizations.access import get_object_for_user, require_role, scoped
from organizations.models import Role

LOG_PAGE_SIZE = 25


def _endpoint(request, public_id) -> WebhookEndpoint:
    return get_object_for_user(request, WebhookEndpoint, role=Role.OWNER, public_id=public_id)


@require_GET
def webhook_list(request):
    require_role(request, Role.OWNER)
    rows = scoped(request, WebhookEndpoint).annotate(
        pending=Count("deliveries", filter=Q(deliveries__state__in=ACTIVE_STATES)),
        failed=Count("deliveries", filter=Q(deliveries__state=WorkState.FAILED)),
    )
    return render(
        request,
        "notifications/webhooks.html",
        {"endpoints": rows, "event_types": outgoing.EVENT_TYPES},
    )


def _secret_page(request, endpoint, secret, *, rotated: bool):
    """The one page that ever shows the secret: the answer to the POST that made it."""
    response = render(
        request,
        "notifications/webhook_secret.html",
        {"endpoint": endpoint, "secret": secret, "rotated": rotated, "header": signing.HEADER},
    )
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@hide_secrets_from_error_reports
@require_http_methods(["GET", "POST"])
def webhook_add(request):
    membership = require_role(request, Role.OWNER)
    form = WebhookEndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        endpoint, secret = endpoints.create_endpoint(
            form, organization=membership.organization, by=request.user
        )
        return _secret_page(request, endpoint, secret, rotated=False)
    return render(request, "notifications/webhook_add.html", {"form": form})


@require_http_methods(["GET", "POST"])
def webhook_detail(request, public_id):
    endpoint = _endpoint(request, public_id)
    form = WebhookEndpointForm(request.POST or None, instance=endpoint)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Endpoint saved.")
        return redirect("notifications:webhook_detail", public_id=endpoint.public_id)
    deliveries = (
        EventDelivery.objects.filter(endpoint=endpoint)
        .select_related("event")
        .order_by("-created_at", "-id")
    )
    page = Paginator(deliveries, LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "notifications/webhook_detail.html",
        {"endpoint": endpoint, "form": form, "page": page, "header": signing.HEADER},
    )


@require_POST
def webhook_test(request, public_id):
    endpoint = _endpoint(request, public_id)
    if not endpoint.enabled:
        messages.error(request, "Turn the endpoint on first: a disabled endpoint receives nothing.")
    else:
        with transaction.atomic():
            outgoing.test_event(endpoint, by=request.user)
        messages.success(request, "A test event is on its way; its delivery appears below.")
    return redirect("notifications:webhook_detail", public_id=endpoint.public_id)


@require_POST
def webhook_redeliver(request, public_id, delivery_id):
    endpoint = _endpoint(request, public_id)
    delivery = get_object_or_404(EventDelivery, endpoint=endpoint, public_id=delivery_id)
    if not endpoint.enabled:
        messages.error(request, "Turn the endpoint on first: a disabled endpoint receives nothing.")
    else:
        with transaction.atomic():
            outgoing.redeliver(delivery)
        messages.success(
            request, f"Event {delivery.event.public_id} will be delivered again (same event id)."
        )
    return redirect("notifications:webhook_detail", public_id=endpoint.public_id)


@never_cache
@hide_secrets_from_error_reports
@require_POST
def webhook_rotate(request, public_id):
    endpoint = _endpoint(request, public_id)
    secret = endpoints.rotate_secret(endpoint)
    return _secret_page(request, endpoint, secret, rotated=True)


@require_POST
def webhook_enable(request, public_id):
    endpoint = _endpoint(request, public_id)
    if request.POST.get("enabled") == "1":
        endpoints.enable(endpoint)
        messages.success(request, "Endpoint turned on. Redeliver below what it missed.")
    else:
        endpoints.disable(endpoint, by=request.user)
        messages.success(request, "Endpoint turned off: nothing more is sent to it.")
    return redirect("notifications:webhook_detail", public_id=endpoint.public_id)


@require_POST
def webhook_delete(request, public_id):
    endpoint = _endpoint(request, public_id)
    url = endpoint.url
    endpoint.delete()
    messages.success(request, f"Endpoint {url} deleted with its delivery log.")
    return redirect("notifications:webhooks")
