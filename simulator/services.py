"""What the simulated HM does. Views are thin wrappers around these functions.

Public helpers for other parts of the project (demo command, tests):

* ``create_app(name, webhook_url=None, webhook_secret=None) -> (app, secrets)``
* ``detect_changes()``: queue webhooks for time-driven status changes (the ``tick`` task).
* ``clearance_status(app, vin)``: the status the simulator would report now.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from fleetportal.untrusted import UntrustedJsonError, parse_json

from . import clock
from .auth import (
    authenticate_oauth_client,
    hmac_sha1,
    hmac_sha256,
    issue_token,
    sha256,
)
from .behaviour import (
    ELIGIBILITY_BRANDS,
    FLEET_BRANDS,
    DeleteRefused,
    Entry,
    delete_action_for,
    next_change_at,
    odometer_km,
    timeline,
    vin_error,
)
from .errors import ApiError, TokenError
from .models import (
    DEFAULT_SCOPES,
    AppKey,
    IssuedToken,
    SimClearance,
    SimulatedApp,
    SimWebhookDelivery,
)
from .vehicle_data import vehicle_state

logger = logging.getLogger("simulator")

WEBHOOK_USER_AGENT = "HM-Webhook/1.2.0"
VEHICLE_TOKEN_LIFETIME = 3600
VEHICLE_TOKEN_SCOPE = "diagnostics.get.odometer"
GET_BY_VIN_LIMIT_PER_MINUTE = 60
ACTIVE = ("pending", "approved", "revoking", "canceling")


# --- applications and keys ----------------------------------------------------------------------


@dataclass
class AppSecrets:
    """Everything a portal needs to talk to a simulated app. Shown once, never stored in clear."""

    app_id: str
    name: str
    client_id: str
    client_secret: str
    private_key_id: str
    private_key_pem: str
    service_account_key_id: str
    service_account_private_key_pem: str
    webhook_secret: str

    def __getitem__(self, key: str) -> str:
        return getattr(self, key)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def console_key_json(self) -> str:
        """The private key file as the HM console downloads it."""
        return json.dumps(
            {"private_key": self.private_key_pem, "id": self.private_key_id}, indent=2
        )


def generate_key_pair() -> tuple[str, str]:
    """A new EC P-256 key pair as (PKCS#8 private PEM, public PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def register_key(
    app: SimulatedApp,
    kind: str,
    public_key_pem: str | None = None,
    *,
    expires_at: datetime | None = None,
) -> tuple[AppKey, str | None]:
    """Register a public key (or generate a pair). Returns the key and the private PEM if generated."""
    private_pem = None
    if public_key_pem is None:
        private_pem, public_key_pem = generate_key_pair()
    key = AppKey.objects.create(
        app=app,
        kind=kind,
        key_id=str(uuid.uuid4()),
        public_key_pem=public_key_pem,
        expires_at=expires_at,
    )
    return key, private_pem


@transaction.atomic
def create_app(
    name: str,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    *,
    scopes: str = DEFAULT_SCOPES,
    approval_delay_seconds: int | None = None,
) -> tuple[SimulatedApp, AppSecrets]:
    client_secret = secrets.token_urlsafe(24)
    if webhook_url and not webhook_secret:
        webhook_secret = secrets.token_urlsafe(24)
    app = SimulatedApp.objects.create(
        name=name,
        client_id=str(uuid.uuid4()),
        client_secret_hash=sha256(client_secret),
        scopes=scopes,
        webhook_url=webhook_url or "",
        webhook_secret=webhook_secret or "",
        approval_delay_seconds=approval_delay_seconds,
    )
    private_key, private_pem = register_key(app, AppKey.Kind.PRIVATE_KEY)
    sa_key, sa_pem = register_key(app, AppKey.Kind.SERVICE_ACCOUNT)
    if app.webhook_url:
        send_ping(app)
    return app, AppSecrets(
        app_id=str(app.app_id),
        name=app.name,
        client_id=app.client_id,
        client_secret=client_secret,
        private_key_id=private_key.key_id,
        private_key_pem=private_pem or "",
        service_account_key_id=sa_key.key_id,
        service_account_private_key_pem=sa_pem or "",
        webhook_secret=app.webhook_secret,
    )


def rotate_client_secret(app: SimulatedApp) -> str:
    secret = secrets.token_urlsafe(24)
    app.client_secret_hash = sha256(secret)
    app.save(update_fields=["client_secret_hash"])
    return secret


def set_webhook(app: SimulatedApp, url: str, secret: str | None = None) -> str:
    """Configure the webhook (a ping follows, like the console). Returns the secret."""
    app.webhook_url = url
    app.webhook_secret = secret or secrets.token_urlsafe(24)
    app.save(update_fields=["webhook_url", "webhook_secret"])
    if url:
        send_ping(app)
    return app.webhook_secret


# --- clearances ---------------------------------------------------------------------------------


def approval_delay(app: SimulatedApp) -> int:
    if app.approval_delay_seconds is not None:
        return app.approval_delay_seconds
    return int(getattr(settings, "SIMULATOR_APPROVAL_DELAY_SECONDS", 5))


def removal_delay() -> int:
    return int(getattr(settings, "SIMULATOR_REMOVAL_DELAY_SECONDS", 5))


def current_entry(clearance: SimClearance, now: datetime) -> Entry:
    return timeline(clearance.facts(), now)[-1]


def clearance_status(app: SimulatedApp, vin: str) -> str | None:
    clearance = SimClearance.objects.filter(app=app, vin=vin.upper()).first()
    return current_entry(clearance, clock.now()).status if clearance else None


def clearance_json(clearance: SimClearance, now: datetime) -> dict:
    entries = timeline(clearance.facts(), now)
    return {
        "vin": clearance.vin,
        "status": entries[-1].status,
        "brand": clearance.brand,
        "tags": clearance.tags or {},
        "changelog": list(clearance.history or []) + [entry.to_json() for entry in entries],
    }


def _item_error(vin: object, description: str) -> dict:
    return {
        "vin": str(vin) if vin is not None else "",
        "status": "error",
        "description": description,
    }


def _tags(raw: object) -> dict[str, str] | None:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        return None
    return {str(k): v for k, v in raw.items()}


def request_clearances(app: SimulatedApp, vehicles: object) -> list[dict]:
    """POST /v1/fleets/vehicles. Each item gets its own answer; bad items don't fail the batch."""
    if not isinstance(vehicles, list):
        raise ApiError(422, "Unprocessable Entity", "vehicles is required", "vehicles")
    now = clock.now()
    results = []
    for item in vehicles:
        if not isinstance(item, dict):
            results.append(_item_error(None, "vehicle should be an object"))
            continue
        results.append(_request_one(app, item, now))
    return results


def _request_one(app: SimulatedApp, item: dict, now: datetime) -> dict:
    vin = item.get("vin")
    problem = vin_error(vin)
    if problem:
        return _item_error(vin, problem)
    vin = str(vin).upper()
    if item.get("brand") not in FLEET_BRANDS:
        return _item_error(vin, "The brand is invalid")
    tags = _tags(item.get("tags"))
    if tags is None:
        return _item_error(vin, "tags should be a map of strings")
    odometer = None
    measures = item.get("control_measures")
    if isinstance(measures, dict) and isinstance(measures.get("odometer"), dict):
        odometer = odometer_km(measures["odometer"].get("value"), measures["odometer"].get("unit"))

    with transaction.atomic():
        clearance = SimClearance.objects.select_for_update().filter(app=app, vin=vin).first()
        if clearance is not None:
            clearance.times_requested += 1
            entries = timeline(clearance.facts(), now)
            if entries[-1].status in ACTIVE:
                # Already known and alive: HM answers with the current state.
                clearance.save(update_fields=["times_requested"])
                return {"vin": vin, "status": entries[-1].status, "tags": clearance.tags or {}}
            clearance.history = list(clearance.history or []) + [e.to_json() for e in entries]
        else:
            clearance = SimClearance(app=app, vin=vin, times_requested=1)
        clearance.brand = str(item["brand"])
        clearance.tags = tags
        clearance.control_odometer_km = odometer
        clearance.requested_at = now
        clearance.approval_delay_seconds = approval_delay(app)
        clearance.removal_delay_seconds = removal_delay()
        clearance.deleted_at = None
        clearance.delete_action = ""
        clearance.notified_status = ""
        clearance.settled = False
        clearance.save()
        sync_notifications(clearance, now)
    return {"vin": vin, "status": "pending", "tags": tags}


def _filter_error(detail: str) -> ApiError:
    return ApiError(422, "Unprocessable Entity", detail, "filter")


def parse_filter(raw: str | None) -> dict:
    if not raw:
        return {}
    try:
        value = parse_json(raw)
    except UntrustedJsonError as exc:
        raise _filter_error("filter should be URL encoded JSON") from exc
    if not isinstance(value, dict):
        raise _filter_error("filter should be a JSON object")
    for field, condition in value.items():
        if field not in ("vin", "status", "brand", "tags", "approved_at", "inserted_at"):
            raise _filter_error(f"filtering by {field} is not supported")
        if (
            not isinstance(condition, dict)
            or "operator" not in condition
            or "value" not in condition
        ):
            raise _filter_error(f"filter on {field} needs operator and value")
    return value


def _compare(op: str, actual, expected) -> bool:
    if op == "eq":
        return actual == expected
    if op == "in":
        return isinstance(expected, list) and actual in expected
    if actual is None:
        return False
    return {
        "lt": actual < expected,
        "gt": actual > expected,
        "lte": actual <= expected,
        "gte": actual >= expected,
    }.get(op, False)


def _time_value(raw: object) -> datetime:
    if not isinstance(raw, str):
        raise _filter_error("dates should be ISO8601 strings")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _filter_error(f"{raw} is not an ISO8601 date") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _matches(clearance: SimClearance, entries: list[Entry], flt: dict) -> bool:
    for field, condition in flt.items():
        op, expected = condition["operator"], condition["value"]
        if field in ("vin", "status", "brand"):
            actual = {
                "vin": clearance.vin,
                "status": entries[-1].status,
                "brand": clearance.brand,
            }[field]
            if op not in ("eq", "in"):
                raise _filter_error(f"operator {op} is not supported for {field}")
            if not _compare(op, actual, expected):
                return False
        elif field == "tags":
            if op not in ("eq", "contains") or not isinstance(expected, dict):
                raise _filter_error("tags filter needs eq or contains and an object")
            tags = clearance.tags or {}
            if op == "eq" and tags != expected:
                return False
            if op == "contains" and any(tags.get(k) != v for k, v in expected.items()):
                return False
        else:
            if op not in ("eq", "lt", "gt", "lte", "gte"):
                raise _filter_error(f"operator {op} is not supported for {field}")
            if field == "inserted_at":
                actual_time = clearance.requested_at
            else:
                approved = [e.timestamp for e in entries if e.status == "approved"]
                actual_time = approved[-1] if approved else None
            if not _compare(op, actual_time, _time_value(expected)):
                return False
    return True


def list_clearances(app: SimulatedApp, raw_filter: str | None) -> list[dict]:
    flt = parse_filter(raw_filter)
    now = clock.now()
    answer = []
    for clearance in SimClearance.objects.filter(app=app).order_by("vin"):
        entries = timeline(clearance.facts(), now)
        if _matches(clearance, entries, flt):
            answer.append(clearance_json(clearance, now))
    return answer


def _not_found(vin: str) -> ApiError:
    return ApiError(404, "Not found", f"No clearance found for vin {vin}", "vin")


def check_get_rate_limit(app: SimulatedApp) -> None:
    """GET /v1/fleets/vehicles/{vin}: 60 calls per minute per application (spec)."""
    minute = int(clock.now().timestamp() // 60)
    key = f"simulator:get-by-vin:{app.pk}:{minute}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:
        count = 1
    if count > GET_BY_VIN_LIMIT_PER_MINUTE:
        seconds = 60 - int(clock.now().timestamp() % 60)
        raise ApiError(
            429, "Too many requests", f"retry after {seconds}s", f"fleet-manager-api:{app.app_id}"
        )


def get_clearance(app: SimulatedApp, vin: str) -> dict:
    check_get_rate_limit(app)
    clearance = SimClearance.objects.filter(app=app, vin=vin.upper()).first()
    if clearance is None:
        raise _not_found(vin)
    return clearance_json(clearance, clock.now())


def delete_clearance(app: SimulatedApp, vin: str) -> dict:
    """DELETE: approved -> revoking, pending -> canceling; HM's 404/409/422 otherwise."""
    now = clock.now()
    with transaction.atomic():
        clearance = (
            SimClearance.objects.select_for_update().filter(app=app, vin=vin.upper()).first()
        )
        if clearance is None:
            raise _not_found(vin)
        try:
            action = delete_action_for(clearance.facts(), now)
        except DeleteRefused as refused:
            raise ApiError(
                refused.status_code, refused.title, refused.detail, refused.source
            ) from refused
        clearance.deleted_at = now
        clearance.delete_action = action
        clearance.removal_delay_seconds = removal_delay()
        clearance.settled = False
        clearance.save()
        sync_notifications(clearance, now)
        # Revoking a clearance ends the legacy per-vehicle tokens too.
        IssuedToken.objects.filter(app=app, vin=clearance.vin, revoked_at__isnull=True).update(
            revoked_at=now
        )
    return {"vin": clearance.vin, "status": action, "tags": clearance.tags or {}}


# --- legacy per-vehicle tokens ------------------------------------------------------------------


def _vehicle_token_pair(app: SimulatedApp, vin: str, authorization_id: str, now: datetime) -> dict:
    access, _ = issue_token(
        app,
        IssuedToken.Kind.VEHICLE_ACCESS,
        now=now,
        lifetime=VEHICLE_TOKEN_LIFETIME,
        vin=vin,
        scope=VEHICLE_TOKEN_SCOPE,
        authorization_id=authorization_id,
    )
    refresh, _ = issue_token(
        app,
        IssuedToken.Kind.VEHICLE_REFRESH,
        now=now,
        lifetime=None,
        vin=vin,
        scope=VEHICLE_TOKEN_SCOPE,
        authorization_id=authorization_id,
    )
    return {
        "access_token": access,
        "authorization_id": authorization_id,
        "expires_in": VEHICLE_TOKEN_LIFETIME,
        "refresh_token": refresh,
        "scope": VEHICLE_TOKEN_SCOPE,
        "status": "approved",
        "token_type": "bearer",
    }


def issue_vehicle_token(app: SimulatedApp, body: dict) -> dict:
    vin = str(body.get("vin") or "").upper()
    if not vin:
        raise TokenError("vin can't be blank")
    clearance = SimClearance.objects.filter(app=app, vin=vin).first()
    now = clock.now()
    if clearance is None or current_entry(clearance, now).status != "approved":
        raise TokenError("vin is not approved for this fleet")
    return _vehicle_token_pair(app, vin, str(uuid.uuid4()), now)


def refresh_vehicle_token(body: dict, audiences: set[str]) -> dict:
    app = authenticate_oauth_client(body, audiences)
    raw = str(body.get("refresh_token") or "")
    if not raw:
        raise TokenError("refresh_token can't be blank")
    now = clock.now()
    with transaction.atomic():
        token = (
            IssuedToken.objects.select_for_update()
            .filter(app=app, kind=IssuedToken.Kind.VEHICLE_REFRESH, token_hash=sha256(raw))
            .first()
        )
        if token is None or token.revoked_at is not None:
            raise TokenError("refresh_token is invalid")
        clearance = SimClearance.objects.filter(app=app, vin=token.vin).first()
        if clearance is None or current_entry(clearance, now).status != "approved":
            raise TokenError("refresh_token is invalid")
        token.revoked_at = now  # rotation: a refresh token works once
        token.save(update_fields=["revoked_at"])
        return _vehicle_token_pair(app, token.vin, token.authorization_id, now)


def revoke_token(body: dict, audiences: set[str]) -> None:
    """DELETE /v1/access_tokens (RFC 7009: an unknown token is not an error)."""
    app = authenticate_oauth_client(body, audiences)
    raw = str(body.get("token") or "")
    if not raw:
        raise TokenError("token can't be blank")
    now = clock.now()
    token = IssuedToken.objects.filter(app=app, token_hash=sha256(raw)).first()
    if token is None or token.revoked_at is not None:
        return
    token.revoked_at = now
    token.save(update_fields=["revoked_at"])
    if token.kind == IssuedToken.Kind.VEHICLE_REFRESH and token.authorization_id:
        IssuedToken.objects.filter(
            app=app, authorization_id=token.authorization_id, revoked_at__isnull=True
        ).update(revoked_at=now)


def revoke_auth_token(raw: str) -> dict:
    token = IssuedToken.objects.filter(
        kind=IssuedToken.Kind.AUTH_TOKEN, token_hash=sha256(raw)
    ).first()
    if token is None:
        raise ApiError(404, "Not found", "auth_token not found", "auth_token")
    if token.revoked_at is None:
        token.revoked_at = clock.now()
        token.save(update_fields=["revoked_at"])
    return {
        "auth_token": raw,
        "valid_from": token.issued_at.isoformat().replace("+00:00", "Z"),
        "valid_until": token.revoked_at.isoformat().replace("+00:00", "Z"),
    }


# --- eligibility and vehicle data ---------------------------------------------------------------


def eligibility(body: object) -> dict:
    if not isinstance(body, dict):
        raise ApiError(422, "Unprocessable Entity", "vin and brand are required")
    vin = body.get("vin")
    problem = vin_error(vin)
    if problem:
        raise ApiError(422, "Invalid VIN", problem, "vin")
    if body.get("brand") not in ELIGIBILITY_BRANDS:
        raise ApiError(422, "Invalid brand", "The brand is invalid", "brand")
    digest = sha256(str(vin).upper())
    eligible = int(digest[:2], 16) % 8 != 0 or str(vin).upper().startswith("2HM")
    answer = {
        "vin": str(vin).upper(),
        "eligible": eligible,
        "data_delivery": ["pull", "push"] if eligible else [],
        "connectivity_status": "activated" if eligible else "deactivated",
        "primary_user_assigned": eligible,
    }
    return answer


def vehicle_data(app: SimulatedApp, vin: str) -> dict:
    vin = vin.upper()
    clearance = SimClearance.objects.filter(app=app, vin=vin).first()
    now = clock.now()
    if clearance is None or current_entry(clearance, now).status != "approved":
        raise ApiError(403, "Forbidden", "No active consent for this vehicle", request_id=True)
    state = vehicle_state(vin, now, brand=clearance.brand)
    return {"request_id": uuid.uuid4().hex, **state}


# --- webhooks -----------------------------------------------------------------------------------


def _queue_delivery(
    app: SimulatedApp, event: str, vin: str, payload: dict
) -> SimWebhookDelivery | None:
    if not app.webhook_url:
        return None
    delivery = SimWebhookDelivery.objects.create(
        app=app, event=event, vin=vin, body=json.dumps(payload, separators=(",", ":"))
    )
    transaction.on_commit(lambda: _enqueue(delivery.pk))
    return delivery


def _enqueue(delivery_pk: int) -> None:
    from .tasks import deliver_webhook

    try:
        deliver_webhook.delay(delivery_pk)
    except Exception:  # the broker being down must not break the simulated API
        logger.exception("simulator: could not queue webhook delivery %s", delivery_pk)


def send_ping(app: SimulatedApp) -> SimWebhookDelivery | None:
    return _queue_delivery(
        app, "ping", "", {"event": {"type": "ping"}, "application_id": str(app.app_id)}
    )


def _clearance_payload(clearance: SimClearance, entry: Entry) -> dict:
    """What HM sends (PROTOCOL.md §5): the VIN, the new status in ``action`` and any ``detail``.
    Nothing more -- in particular no time of the change: a receiver must not rely on one."""
    event = {"action": entry.status}
    if entry.reason:
        event["detail"] = entry.reason
    return {"vehicle": {"vin": clearance.vin}, "event": event}


def sync_notifications(clearance: SimClearance, now: datetime) -> list[SimWebhookDelivery]:
    """Queue a webhook for every status change since the last one notified. Call in a transaction."""
    facts = clearance.facts()
    entries = timeline(facts, now)
    statuses = [entry.status for entry in entries]
    new: list[Entry] = []
    if clearance.notified_status != statuses[-1]:
        start = 0
        if clearance.notified_status in statuses:
            start = len(statuses) - statuses[::-1].index(clearance.notified_status)
        new = entries[start:]
    deliveries = []
    for entry in new:
        delivery = _queue_delivery(
            clearance.app,
            "fleet_clearance_changed",
            clearance.vin,
            _clearance_payload(clearance, entry),
        )
        if delivery:
            deliveries.append(delivery)
    settled = next_change_at(facts, now) is None
    if new or settled != clearance.settled:
        clearance.notified_status = statuses[-1]
        clearance.settled = settled
        clearance.save(update_fields=["notified_status", "settled"])
    return deliveries


def detect_changes(now: datetime | None = None, *, limit: int = 1000) -> int:
    """Find clearances whose status moved on by itself and queue their webhooks."""
    now = now or clock.now()
    queued = 0
    with transaction.atomic():
        rows = (
            SimClearance.objects.select_for_update(skip_locked=True)
            .select_related("app")
            .filter(settled=False)
            .order_by("pk")[:limit]
        )
        for clearance in rows:
            queued += len(sync_notifications(clearance, now))
    return queued


def sign(secret: str, body: bytes) -> tuple[str, str]:
    return f"sha256={hmac_sha256(secret, body)}", f"sha1={hmac_sha1(secret, body)}"


def deliver(
    delivery_pk: int, *, final_attempt: bool = True, timeout: tuple[float, float] = (3, 10)
) -> bool:
    """POST one delivery to the app's webhook URL, signed. True when the receiver answered 2xx."""
    delivery = SimWebhookDelivery.objects.select_related("app").filter(pk=delivery_pk).first()
    if delivery is None or delivery.status == SimWebhookDelivery.Status.DELIVERED:
        return True
    app = delivery.app
    body = delivery.body.encode()
    signature_256, signature_1 = sign(app.webhook_secret, body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": WEBHOOK_USER_AGENT,
        "X-HM-Delivery": str(delivery.delivery_id),
        "X-HM-Event": delivery.event,
        "X-HM-Signature-256": signature_256,
        "X-HM-Signature": signature_1,
    }
    delivery.attempts += 1
    ok = False
    try:
        if not app.webhook_url:
            raise requests.RequestException("no webhook URL configured")
        response = requests.post(
            app.webhook_url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
        delivery.last_status_code = response.status_code
        delivery.last_error = "" if response.ok else f"HTTP {response.status_code}"
        ok = 200 <= response.status_code < 300
    except requests.RequestException as exc:
        delivery.last_error = f"{type(exc).__name__}"[:300]
    if ok:
        delivery.status = SimWebhookDelivery.Status.DELIVERED
        delivery.delivered_at = clock.now()
    elif final_attempt:
        delivery.status = SimWebhookDelivery.Status.FAILED
    delivery.save(
        update_fields=["attempts", "last_status_code", "last_error", "status", "delivered_at"]
    )
    return ok


def pending_deliveries(app: SimulatedApp | None = None) -> Iterable[SimWebhookDelivery]:
    qs = SimWebhookDelivery.objects.filter(status=SimWebhookDelivery.Status.PENDING)
    return qs.filter(app=app) if app else qs


def travel(delta: timedelta) -> datetime:
    """Advance simulator time and process what became due (handy in shells and tests)."""
    new_now = clock.advance(delta)
    detect_changes(new_now)
    return new_now
