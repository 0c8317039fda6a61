"""Helpers for lifecycle tests: a simulated HM app wired to a Credential, signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

from django.conf import settings

from clearance.models import Clearance
from simulator import services as sim
from tests.factories import OrganizationFactory, VehicleFactory
from tests.support.simulator import simulator_credential

SEED_ODOMETER = "2HM00000000000001"
SEED_PENDING = "2HM00000000000002"
SEED_REJECTED = "2HM00000000000003"


def ordinary_vin(n: int) -> str:
    return f"2HMTEST{n:010d}"


def wire(organization=None, *, webhooks: bool = True, approval_delay: int = 5, **app_knobs):
    """(credential, app): a simulator credential for a fresh simulated app (webhooks to us)."""
    organization = organization or OrganizationFactory()
    credential, app, _ = simulator_credential(
        organization,
        f"App {uuid.uuid4().hex[:6]}",
        approval_delay_seconds=approval_delay,
        webhook_secret="hook-" + uuid.uuid4().hex,
    )
    for name, value in app_knobs.items():
        setattr(app, name, value)
    if app_knobs:
        app.save()
    if webhooks:
        url = f"{settings.SITE_URL}/webhooks/high-mobility/{credential.public_id}/"
        sim.set_webhook(app, url, credential.webhook_secret)
    return credential, app


def vehicles(organization, vins, **fields):
    return [VehicleFactory(organization=organization, vin=vin, **fields) for vin in vins]


def statuses(credential) -> dict[str, str]:
    return dict(
        Clearance.objects.filter(credential=credential).values_list("vehicle__vin", "status")
    )


def signed(secret: str, payload: dict | bytes) -> tuple[bytes, str]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return body, "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(client, credential, payload, *, delivery=None, secret=None, signature=None):
    body, good = signed(secret or credential.webhook_secret, payload)
    headers = {"HTTP_X_HM_DELIVERY": delivery or str(uuid.uuid4())}
    if signature is not False:
        headers["HTTP_X_HM_SIGNATURE_256"] = good if signature is None else signature
    return client.post(
        f"/webhooks/high-mobility/{credential.public_id}/",
        data=body,
        content_type="application/json",
        **headers,
    )


def clearance_payload(vin: str, action: str, detail=None) -> dict:
    """A clearance webhook as HM sends it (PROTOCOL.md §5): no time of the change."""
    event = {"action": action}
    if detail:
        event["detail"] = detail
    return {"vehicle": {"vin": vin}, "event": event}
