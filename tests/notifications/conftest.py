from __future__ import annotations

import pytest

from notifications import outgoing, signing
from notifications.models import AlertRule, WebhookEndpoint
from tests.notifications.receiver import start_receiver


@pytest.fixture
def receiver():
    server = start_receiver()
    yield server
    server.close()


def make_rule(organization, kind, *, name=None, **fields) -> AlertRule:
    return AlertRule.objects.create(
        organization=organization, kind=kind, name=name or f"{kind} rule", **fields
    )


def make_endpoint(organization, url, *, events=None, secret=None, **fields) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        organization=organization,
        url=url,
        event_types=list(events or outgoing.EVENT_TYPES),
        secret=secret or signing.new_secret(),
        **fields,
    )
