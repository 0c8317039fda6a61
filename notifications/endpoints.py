"""Webhook endpoints: made with a secret shown once, rotated, turned on and off."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from durable import work
from durable.models import ACTIVE_STATES
from notifications import signing
from notifications.models import EventDelivery, WebhookEndpoint


def create_endpoint(form, *, organization, by) -> tuple[WebhookEndpoint, str]:
    """(the endpoint, its secret): the secret is returned this once, then only stored encrypted."""
    endpoint = form.save(commit=False)
    endpoint.organization = organization
    endpoint.created_by = by
    secret = signing.new_secret()
    endpoint.secret = secret
    endpoint.secret_set_at = timezone.now()
    endpoint.save()
    return endpoint, secret


def rotate_secret(endpoint: WebhookEndpoint) -> str:
    """A new secret, effective for the next attempt of every delivery; returned this once."""
    secret = signing.new_secret()
    endpoint.secret = secret
    endpoint.secret_set_at = timezone.now()
    endpoint.save(update_fields=["secret", "secret_set_at"])
    return secret


def enable(endpoint: WebhookEndpoint) -> None:
    endpoint.enabled = True
    endpoint.disabled_at = None
    endpoint.disabled_reason = ""
    endpoint.failing_since = None
    endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason", "failing_since"])


def disable(endpoint: WebhookEndpoint, *, by) -> None:
    """Turned off by a person: nothing more is sent; what was waiting fails, and can be
    redelivered once the endpoint is on again."""
    with transaction.atomic():
        endpoint.enabled = False
        endpoint.disabled_at = timezone.now()
        endpoint.disabled_reason = f"Turned off by {by.get_username()}."
        endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason"])
        work.complete(
            EventDelivery,
            EventDelivery.objects.filter(endpoint=endpoint, state__in=ACTIVE_STATES),
            "The endpoint was turned off.",
        )
