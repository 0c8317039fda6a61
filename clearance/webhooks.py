"""HM webhook receiver: ``POST /webhooks/high-mobility/<credential public_id>/``.

Verify ``X-HM-Signature-256`` (HMAC-SHA256 of the raw body with the credential's webhook secret,
constant-time), store the delivery (once per ``X-HM-Delivery``), answer 200 at once; a debounced
task confirms it with HM (clearance/services/webhooks.py). The database down is a 503, so HM
retries; the broker down changes nothing (the reconciler wakes the confirmation). A bad or
missing signature is 401 and changes nothing. Only this view is exempt from login and CSRF (HM
cannot log in; the signature is the authentication).

Fast, as HM may send thousands at once: the credential comes from this process's memory
(clearance/webhook_credentials.py), the delivery is one autocommitted INSERT, the page middleware
is skipped (fleetportal/middleware.py), and the kept database connection is not checked with a
query first: a connection the server dropped fails the first statement, which then runs again on
a new one (``_on_kept_connection``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from uuid import UUID

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from clearance import webhook_credentials
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
        return _on_kept_connection(lambda: _receive(request, public_id))
    except DatabaseError:
        # Nothing stored: 503 makes HM deliver again later. (The broker being down is no reason:
        # the delivery is stored and the reconciler wakes its confirmation.)
        logger.error("Webhook for credential %s refused: the database is unavailable", public_id)
        return JsonResponse({"error": "temporarily unavailable, try again"}, status=503)


def _on_kept_connection(receive: Callable[[], JsonResponse]) -> JsonResponse:
    """Run ``receive`` without the per-request health check (``CONN_HEALTH_CHECKS``: one more
    query before the first): a kept connection the server closed meanwhile fails the first
    statement instead, and ``receive`` runs once more on a new connection. Running it again is
    harmless: reading the credential changes nothing and the delivery id is unique (a row stored
    by a first try that only lost its answer is a repeat: 200, the reconciler confirms it).
    Inside a transaction (tests, a caller's atomic block) there is nothing to redo safely."""
    kept = connection.connection is not None and not connection.in_atomic_block
    # Django then skips its SELECT 1 for this request (an attribute of every backend since 4.1).
    connection.health_check_done = True  # type: ignore[attr-defined]
    try:
        return receive()
    except (OperationalError, InterfaceError):
        if not kept:
            raise
        logger.info("Kept database connection lost; receiving the webhook on a new one")
        connection.close()
        return receive()


def _receive(request: HttpRequest, public_id: UUID) -> JsonResponse:
    credential = webhook_credentials.lookup(public_id)
    if credential is None:
        return JsonResponse({"error": "unknown webhook address"}, status=404)
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        return JsonResponse({"error": "payload too large"}, status=413)
    signature = request.headers.get("X-HM-Signature-256")
    if not signature_ok(credential.webhook_secret, body, signature) and credential.remembered:
        # The secret may have been replaced in another process since: ask the database.
        credential = webhook_credentials.lookup(public_id, fresh=True)
        if credential is None:
            return JsonResponse({"error": "unknown webhook address"}, status=404)
    if not signature_ok(credential.webhook_secret, body, signature):
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
    try:
        created = services.record_webhook(credential, payload, delivery_id=delivery_id, event=event)
    except IntegrityError:
        # Not a repeat (record_webhook answers those): the credential is gone, deleted in
        # another process while this one still remembered it.
        webhook_credentials.forget_address(public_id)
        return JsonResponse({"error": "unknown webhook address"}, status=404)
    return JsonResponse({"ok": True, "event": event, "duplicate": not created})
