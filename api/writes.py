"""What the API's POST endpoints do: onboard a batch of vehicles, defleet a batch of VINs, and
answer a retried request (same ``Idempotency-Key``) with the first answer.

Vehicles are checked by the CSV import's row rules (``imports.rows.RowValidator``: VIN, brand,
plate, nickname, tags, odometer, with the same sentences), then created and queued for clearance
through the onboarding service in one transaction; a defleet goes through the defleet service
with the same refusals the pages show. Both answer per item.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from api import feed
from api.errors import ApiError
from api.models import ApiToken, IdempotentRequest
from api.reads import serialize_vehicles, with_latest_snapshot
from audit import log as audit
from audit.models import Action
from clearance import statuses
from clearance.models import Credential
from clearance.selectors import credentials_for, vehicles_with_clearance
from clearance.services import defleet as defleet_service
from clearance.services import onboarding
from imports.parse import CsvLayout, RawRow
from imports.rows import RowValidator
from organizations.models import Organization
from vehicles.models import Vehicle
from vehicles.validation import InvalidValue, format_tags, normalize_vin

FIELDS = ("vin", "brand", "license_plate", "nickname", "tags", "odometer_km")
_LAYOUT = CsvLayout(
    encoding="utf-8",
    encoding_label="JSON",
    delimiter=",",
    header_row=0,
    columns={name: index for index, name in enumerate(FIELDS)},
    labels={name: name for name in FIELDS},
    unknown_columns=(),
    header_width=len(FIELDS),
)
NO_CREDENTIAL = (
    "This organization has no High Mobility credential yet: an owner needs to add one before "
    "vehicles can be sent."
)
NEVER_REQUESTED = "No clearance was ever requested for this vehicle."


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return format_tags({str(k): str(v) for k, v in value.items()}, separator=";")
    return str(value)


def choose_credential(organization: Organization, wanted: Any) -> Credential:
    credentials = list(credentials_for(organization))
    if wanted:
        chosen = next((c for c in credentials if str(c.public_id) == str(wanted)), None)
        if chosen is None:
            raise ApiError(
                "invalid_request",
                "That HM application does not exist (any more) in your organization.",
                details=[
                    {"field": "hm_application", "message": "Not one of your HM applications."}
                ],
            )
        return chosen
    if not credentials:
        raise ApiError("no_hm_application", NO_CREDENTIAL)
    if len(credentials) > 1:
        raise ApiError(
            "invalid_request",
            "Your organization has several HM applications: say which one the clearance "
            "requests are sent with (hm_application).",
            details=[{"field": "hm_application", "message": "Required with several applications."}],
        )
    return credentials[0]


@dataclass
class _Item:
    index: int
    vin: str
    errors: list[dict[str, str]]
    warnings: list[dict[str, str]]
    vehicle: Vehicle | None = None


def add_vehicles(
    organization: Organization, items: list[dict[str, Any]], *, hm_application: Any = None
) -> dict[str, Any]:
    """Create the valid vehicles and queue their clearance requests (sent to HM after commit);
    the others are answered with what is wrong, in the import's words. One transaction."""
    credential = choose_credential(organization, hm_application)
    checked: list[tuple[_Item, Any]] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        raw = RawRow(row=index, values={name: _cell(item.get(name)) for name in FIELDS})
        row = RowValidator(_LAYOUT).validate(raw)  # one item: duplicates are checked below
        result = _Item(
            index,
            row.vin or str(item.get("vin") or "")[:40],
            [{"field": f"vehicles[{index}].{i.column}", "message": i.message} for i in row.errors],
            [
                {"field": f"vehicles[{index}].{i.column}", "message": i.message}
                for i in row.warnings
            ],
        )
        if row.ok:
            earlier = first_index.setdefault(row.vin, index)
            if earlier != index:
                result.errors.append(
                    {
                        "field": f"vehicles[{index}].vin",
                        "message": f"The VIN {row.vin} already appears in item {earlier} of this batch.",
                    }
                )
        checked.append((result, row))
    for attempt in range(2):
        try:
            with transaction.atomic():
                _create(organization, credential, checked)
            break
        except IntegrityError:
            # A VIN was added meanwhile (a person, an import): it is answered as a duplicate.
            if attempt:
                raise
            for result, _row in checked:
                result.vehicle = None
    created = [result.vehicle for result, _ in checked if result.vehicle is not None]
    fresh = {
        v.pk: v
        for v in with_latest_snapshot(vehicles_with_clearance()).filter(
            pk__in=[v.pk for v in created]
        )
    }
    dicts = dict(zip(fresh, serialize_vehicles(list(fresh.values())), strict=True))
    answers = [
        {
            "index": result.index,
            "vin": result.vin,
            "result": "created" if result.vehicle is not None else "refused",
            "errors": result.errors,
            "warnings": result.warnings,
            "vehicle": dicts.get(result.vehicle.pk) if result.vehicle is not None else None,
        }
        for result, _ in checked
    ]
    done = sum(1 for answer in answers if answer["result"] == "created")
    return {"created": done, "refused": len(answers) - done, "items": answers}


def _create(
    organization: Organization, credential: Credential, checked: list[tuple[_Item, Any]]
) -> None:
    wanted = [row.vin for result, row in checked if not result.errors]
    existing = set(
        Vehicle.objects.filter(organization=organization, vin__in=wanted).values_list(
            "vin", flat=True
        )
    )
    vehicles = []
    for result, row in checked:
        if result.errors:
            continue
        if row.vin in existing:
            result.errors.append(
                {
                    "field": f"vehicles[{result.index}].vin",
                    "message": f"{row.vin} is already in your fleet.",
                }
            )
            continue
        result.vehicle = Vehicle(
            organization=organization,
            vin=row.vin,
            brand=row.brand,
            license_plate=row.license_plate,
            nickname=row.nickname,
            tags=row.tags,
            odometer_km=row.odometer_km,
        )
        vehicles.append(result.vehicle)
    Vehicle.objects.bulk_create(vehicles, batch_size=1000)
    feed.added(vehicles)
    audit.record_many(
        Action.VEHICLE_ADDED,
        [audit.Target("vehicle", v.public_id, v.vin, {"brand": v.brand}) for v in vehicles],
        organization=organization,
    )
    onboarding.queue_clearance_requests(
        [vehicle.pk for vehicle in vehicles], credential=credential, actor=None
    )


def defleet_vins(organization: Organization, vins: list[str]) -> dict[str, Any]:
    """Defleet what can be (approved: revoke, pending: cancel) in the background, through the
    defleet service; answer the rest with the words the vehicle page shows."""
    normalized: list[str] = []
    for vin in vins:
        try:
            normalized.append(normalize_vin(vin)[0])
        except InvalidValue:
            normalized.append(str(vin).strip().upper()[:40])
    vehicles = {
        v.vin: v
        for v in Vehicle.objects.filter(organization=organization, vin__in=normalized)
        .select_related("clearance")
        .only("pk", "public_id", "vin", "clearance__status")
    }
    answers = []
    to_defleet: list[int] = []
    seen: set[str] = set()
    for index, vin in enumerate(normalized):
        vehicle = vehicles.get(vin)
        if vehicle is None:
            answers.append(
                _defleet_answer(
                    index, vin, "not_found", "none", "No vehicle with this VIN in your fleet."
                )
            )
            continue
        try:
            status = vehicle.clearance.status
        except Vehicle.clearance.RelatedObjectDoesNotExist:
            answers.append(_defleet_answer(index, vin, "refused", "none", NEVER_REQUESTED))
            continue
        if not statuses.can_defleet(status):
            message = statuses.NOT_DEFLEETABLE_WORDS.get(
                status, f"A clearance in status {status!r} cannot be defleeted."
            )
            answers.append(_defleet_answer(index, vin, "refused", status, message))
            continue
        if vin not in seen:
            to_defleet.append(vehicle.pk)
            seen.add(vin)
        answers.append(
            _defleet_answer(
                index,
                vin,
                "accepted",
                status,
                "Defleet requested: High Mobility is asked to "
                + ("revoke the access." if status == "approved" else "cancel the pending request.")
                + " Follow the result in /changes.",
            )
        )
    if to_defleet:
        defleet_service.queue_defleet(to_defleet)
        audit.record_many(
            Action.VEHICLE_DEFLEETED,
            [
                audit.Target("vehicle", vehicles[vin].public_id, vin, {"status": answer["status"]})
                for vin, answer in {
                    a["vin"]: a for a in answers if a["result"] == "accepted"
                }.items()
            ],
            organization=organization,
        )
    accepted = sum(1 for answer in answers if answer["result"] == "accepted")
    return {"accepted": accepted, "refused": len(answers) - accepted, "items": answers}


def _defleet_answer(index: int, vin: str, result: str, status: str, message: str) -> dict[str, Any]:
    return {"index": index, "vin": vin, "result": result, "status": status, "message": message}


# --- Idempotency-Key -------------------------------------------------------------------------

MAX_KEY_LENGTH = 200


def idempotent(
    token: ApiToken, key: str | None, path: str, body: bytes, work: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """``(answer, replayed)``. Without a key, just ``work()`` in a transaction. With one, the
    first request's answer is stored in the same transaction as its effects; a retry (also one
    arriving while the first is still running: it waits on the key's unique index) gets that
    answer back and changes nothing."""
    if not key:
        with transaction.atomic():
            return work(), False
    if len(key) > MAX_KEY_LENGTH:
        raise ApiError(
            "invalid_request",
            f"The Idempotency-Key header is longer than {MAX_KEY_LENGTH} characters.",
            details=[{"field": "Idempotency-Key", "message": "Too long."}],
        )
    fingerprint = hashlib.sha256(body).hexdigest()
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotentRequest.objects.create(
                    token=token, key=key, path=path, fingerprint=fingerprint
                )
        except IntegrityError:
            record = IdempotentRequest.objects.get(token=token, key=key)
            if record.fingerprint != fingerprint or record.path != path:
                raise ApiError(
                    "idempotency_key_reused",
                    "This Idempotency-Key was already used for a different request. Use a new "
                    "key for each new request, and the same key only to retry the same one.",
                ) from None
            return dict(record.body or {}), True
        answer = work()
        record.status_code = 200
        record.body = answer
        record.save(update_fields=["status_code", "body"])
        return answer, False


def purge_idempotency_keys(max_age_hours: int = 24) -> int:
    cutoff = timezone.now() - timedelta(hours=max_age_hours)
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=cutoff).delete()
    return deleted
