"""What the simulated HM does with applications, keys, clearances, eligibility and vehicle
data. Views are thin wrappers around these functions; webhooks are in ``simulator.webhooks``,
legacy vehicle tokens in ``simulator.tokens``, the list filter in ``simulator.filters``."""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from . import clock, filters, webhooks
from .auth import (
    sha256,
)
from .behaviour import (
    CARMAKER_REVOKED,
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
from .errors import ApiError
from .models import (
    DEFAULT_SCOPES,
    AppKey,
    IssuedToken,
    SimClearance,
    SimulatedApp,
)
from .vehicle_data import vehicle_state, with_failures

logger = logging.getLogger("simulator")

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
        webhooks.send_ping(app)
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
        webhooks.send_ping(app)
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
        webhooks.sync_notifications(clearance, now)
    return {"vin": vin, "status": "pending", "tags": tags}


def list_clearances(app: SimulatedApp, raw_filter: str | None) -> list[dict]:
    flt = filters.parse_filter(raw_filter)
    now = clock.now()
    answer = []
    rows = SimClearance.objects.filter(app=app)
    # Asked about named VINs (a webhook's confirmation): only those are looked at, as HM
    # would by its index, not every clearance of the app. The filter below still decides.
    by_vin = flt.get("vin") or {}
    operator = str(by_vin.get("operator"))
    named = {"eq": [by_vin.get("value")], "in": by_vin.get("value")}.get(operator)
    if isinstance(named, list) and all(isinstance(vin, str) for vin in named):
        rows = rows.filter(vin__in=named)
    for clearance in rows.order_by("vin"):
        entries = timeline(clearance.facts(), now)
        if filters.matches(clearance, entries, flt):
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
        webhooks.sync_notifications(clearance, now)
        # Revoking a clearance ends the legacy per-vehicle tokens too.
        IssuedToken.objects.filter(app=app, vin=clearance.vin, revoked_at__isnull=True).update(
            revoked_at=now
        )
    return {"vin": clearance.vin, "status": action, "tags": clearance.tags or {}}


def revoke_as_carmaker(app: SimulatedApp, vin: str) -> SimClearance:
    """The carmaker (or the owner in the brand's app) ends an approved access: revoked at once,
    with its webhook, as HM tells a fleet. Raises ValueError unless the access is approved."""
    now = clock.now()
    with transaction.atomic():
        clearance = SimClearance.objects.select_for_update().get(app=app, vin=vin.upper())
        if current_entry(clearance, now).status != "approved":
            raise ValueError(f"{clearance.vin} is not approved")
        clearance.deleted_at = now
        clearance.delete_action = CARMAKER_REVOKED
        clearance.settled = False
        clearance.save()
        webhooks.sync_notifications(clearance, now)
    return clearance


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
    state = with_failures(state, app.failing_fields.split(), now)
    return {"request_id": uuid.uuid4().hex, **state}


def travel(delta: timedelta) -> datetime:
    """Advance simulator time and process what became due (handy in shells and tests)."""
    new_now = clock.advance(delta)
    webhooks.detect_changes(new_now)
    return new_now


def plant_clearance(
    app: SimulatedApp,
    vin: str,
    brand: str,
    *,
    requested_at: datetime,
    approval_delay: timedelta,
    deleted_at: datetime | None = None,
    delete_action: str = "",
    removal_delay: timedelta = timedelta(seconds=5),
    tags: dict[str, str] | None = None,
) -> SimClearance:
    """Record a clearance round that began in the past (a demo fleet with a history).

    Its past is taken as already notified: webhooks follow only the changes still to come.
    """
    now = clock.now()
    clearance, _ = SimClearance.objects.update_or_create(
        app=app,
        vin=vin.upper(),
        defaults={
            "brand": brand,
            "tags": tags or {},
            "requested_at": requested_at,
            "times_requested": 1,
            "approval_delay_seconds": int(approval_delay.total_seconds()),
            "removal_delay_seconds": int(removal_delay.total_seconds()),
            "deleted_at": deleted_at,
            "delete_action": delete_action,
        },
    )
    clearance.notified_status = current_entry(clearance, now).status
    clearance.settled = next_change_at(clearance.facts(), now) is None
    clearance.save(update_fields=["notified_status", "settled"])
    return clearance
