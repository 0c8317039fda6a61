"""HM webhook receiver: ``POST /webhooks/high-mobility/<credential public_id>/``.

Verify ``X-HM-Signature-256`` (HMAC-SHA256 of the raw body with the credential's webhook secret,
constant-time), store the delivery (once per ``X-HM-Delivery``), answer 200 at once; a debounced
task confirms it with HM (clearance/services/webhooks.py). The database down is a 503, so HM
retries; the broker down changes nothing (the reconciler wakes the confirmation). A bad or missing signature is 401 and changes nothing. Only this view is exempt from
login and CSRF (HM cannot log in; the signature is the authentication).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from uuid import UUID

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from clearance.models import Credential
from clearance.services import webhooks as services
from untrusted import UntrustedJsonError, parse_json

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024


def signature_for(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    if not secret or not header:
        return False
    expected = signature_for(secret, body)
    return hmac.compare_digest(expected.encode(), header.strip().encode())


@csrf_exempt
@login_not_required
@require_POST
def high_mobility(request: HttpRequest, public_id: UUID) -> JsonResponse:
    try:
        return _receive(request, public_id)
    except DatabaseError:
        # Nothing stored: 503 makes HM deliver again later. (The broker being down is no reason:
        # the delivery is stored and the reconciler wakes its confirmation.)
        logger.error("Webhook for credential %s refused: the database is unavailable", public_id)
        return JsonResponse({"error": "temporarily unavailable, try again"}, status=503)


def _receive(request: HttpRequest, public_id: UUID) -> JsonResponse:
    credential = (
        Credential.objects.filter(public_id=public_id)
        .only("id", "public_id", "webhook_secret")
        .first()
    )
    if credential is None:
        return JsonResponse({"error": "unknown webhook address"}, status=404)
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        return JsonResponse({"error": "payload too large"}, status=413)
    if not signature_ok(credential.webhook_secret, body, request.headers.get("X-HM-Signature-256")):
        logger.warning("Webhook for credential %s refused: bad or missing signature", public_id)
        return JsonResponse({"error": "invalid signature"}, status=401)
    try:
        payload = parse_json(body or b"{}")
    except UntrustedJsonError as exc:
        return JsonResponse({"error": f"The body is not usable JSON. {exc}"}, status=400)
    if not isinstance(payload, dict):
        payload = {"payload": payload}
    event = services.webhook_event(payload, request.headers.get("X-HM-Event"))
    delivery_id = services.delivery_id_for(request.headers.get("X-HM-Delivery"))
    _, created = services.record_webhook(credential, payload, delivery_id=delivery_id, event=event)
    return JsonResponse({"ok": True, "event": event, "duplicate": not created})
