"""How simulated clearances evolve, computed from time (pure Python, no Django).

A clearance stores only what happened at request and delete time; its status at any instant is
derived here. So the web process, a Celery worker and a test agree without a background job
mutating rows, and tests travel in time instead of sleeping.

Seed VINs (DESIGN.md §6):

* ``2HM00000000000001``: approved only when the request carried ``control_measures`` odometer
  2050 km; rejected otherwise.
* ``2HM00000000000002``: stays pending forever.
* ``2HM00000000000003``: rejected 3 hours after the request.
* any other VIN: approved after a short delay (``SIMULATOR_APPROVAL_DELAY_SECONDS``).

A delete turns an approved clearance into ``revoking`` and a pending one into ``canceling``; they
become ``revoked`` / ``canceled`` after ``removal_delay`` seconds. The carmaker (or the vehicle's
owner in the brand's app) may also end an approved access: ``revoked`` at once, without
``revoking`` (the simulator's admin action and ``services.revoke_as_carmaker``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

SEED_ODOMETER_VIN = "2HM00000000000001"
SEED_PENDING_VIN = "2HM00000000000002"
SEED_REJECTED_VIN = "2HM00000000000003"
SEED_VINS = (SEED_ODOMETER_VIN, SEED_PENDING_VIN, SEED_REJECTED_VIN)
SEED_ODOMETER_KM = 2050
SEED_REJECTION_DELAY = timedelta(hours=3)

ODOMETER_MISMATCH_REASON = (
    "The odometer control measure does not match the vehicle (expected 2050 kilometers)."
)
OWNER_REJECTED_REASON = "The vehicle owner did not confirm the data access within 3 hours."
CARMAKER_REVOKED_REASON = "The vehicle owner withdrew the consent in the brand's app."
# ``delete_action`` of an access the carmaker ended (not a DELETE of ours).
CARMAKER_REVOKED = "revoked"

# The simulator keeps its own copy of HM's brand lists: it stands in for a foreign server and
# never imports the portal's client (see DESIGN.md §2).
FLEET_BRANDS: tuple[str, ...] = (
    "bmw",
    "citroen",
    "ds",
    "mercedes-benz",
    "mini",
    "opel",
    "peugeot",
    "vauxhall",
    "jeep",
    "fiat",
    "alfaromeo",
    "ford",
    "renault",
    "dacia",
    "toyota",
    "lexus",
    "porsche",
    "maserati",
    "kia",
    "tesla",
    "volvo-cars",
    "skoda",
    "audi",
    "volkswagen",
    "seat",
    "cupra",
    "polestar",
    "sandbox",
)
ELIGIBILITY_BRANDS: tuple[str, ...] = (
    "mercedes-benz",
    "ford",
    "bmw",
    "mini",
    "citroen",
    "peugeot",
    "opel",
    "vauxhall",
    "ds",
    "jeep",
    "fiat",
    "alfaromeo",
    "renault",
    "toyota",
    "lexus",
    "volvo-cars",
    "sandbox",
)
# Cancellation of a pending clearance: Mercedes-Benz, VW group brands and Stellantis (spec text).
CANCELLATION_BRANDS: frozenset[str] = frozenset(
    {
        "mercedes-benz",
        "volkswagen",
        "audi",
        "skoda",
        "seat",
        "cupra",
        "citroen",
        "ds",
        "opel",
        "peugeot",
        "vauxhall",
        "jeep",
        "fiat",
        "alfaromeo",
        "maserati",
    }
)
CANCEL_MIN_AGE = timedelta(days=1)


@dataclass(frozen=True)
class Entry:
    timestamp: datetime
    status: str
    reason: str | None = None

    def to_json(self) -> dict:
        # HM's examples show changelog timestamps without a zone; we send UTC with "Z" (ISO8601).
        item = {"timestamp": self.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"), "status": self.status}
        if self.reason:
            item["reason"] = self.reason
        return item


@dataclass(frozen=True)
class Facts:
    """What the simulator recorded about one clearance round."""

    vin: str
    brand: str
    requested_at: datetime
    approval_delay: timedelta
    removal_delay: timedelta
    control_odometer_km: float | None = None
    deleted_at: datetime | None = None
    delete_action: str = ""  # "revoking" | "canceling" | "revoked" (by the carmaker)


def odometer_km(value: object, unit: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number * 1.609344 if unit == "miles" else number


def decision(facts: Facts) -> Entry | None:
    """The final answer of the approval process, or None if it never comes."""
    vin = facts.vin.upper()
    if vin == SEED_PENDING_VIN:
        return None
    if vin == SEED_REJECTED_VIN:
        return Entry(facts.requested_at + SEED_REJECTION_DELAY, "rejected", OWNER_REJECTED_REASON)
    when = facts.requested_at + facts.approval_delay
    if vin == SEED_ODOMETER_VIN:
        km = facts.control_odometer_km
        if km is None or round(km) != SEED_ODOMETER_KM:
            return Entry(when, "rejected", ODOMETER_MISMATCH_REASON)
    return Entry(when, "approved")


def timeline(facts: Facts, now: datetime) -> list[Entry]:
    """Every status change of this round up to ``now``, oldest first."""
    entries = [Entry(facts.requested_at, "pending")]
    final = decision(facts)
    if (
        final is not None
        and final.timestamp <= now
        and (facts.deleted_at is None or final.timestamp <= facts.deleted_at)
    ):
        entries.append(final)
    if facts.deleted_at is not None and facts.deleted_at <= now and facts.delete_action:
        if facts.delete_action == CARMAKER_REVOKED:
            entries.append(Entry(facts.deleted_at, "revoked", CARMAKER_REVOKED_REASON))
            return entries
        entries.append(Entry(facts.deleted_at, facts.delete_action))
        done_at = facts.deleted_at + facts.removal_delay
        if done_at <= now:
            entries.append(
                Entry(done_at, "revoked" if facts.delete_action == "revoking" else "canceled")
            )
    return entries


def status_at(facts: Facts, now: datetime) -> Entry:
    return timeline(facts, now)[-1]


def next_change_at(facts: Facts, now: datetime) -> datetime | None:
    """When the status will next change by itself (None: never, without a new request)."""
    candidates = []
    final = decision(facts)
    if final is not None and facts.deleted_at is None:
        candidates.append(final.timestamp)
    if facts.deleted_at is not None and facts.delete_action in ("revoking", "canceling"):
        candidates.append(facts.deleted_at + facts.removal_delay)
    future = [when for when in candidates if when > now]
    return min(future) if future else None


class DeleteRefused(Exception):
    def __init__(self, status_code: int, title: str, detail: str, source: str):
        self.status_code = status_code
        self.title = title
        self.detail = detail
        self.source = source
        super().__init__(detail)


def delete_action_for(facts: Facts, now: datetime) -> str:
    """What DELETE does now: "revoking" or "canceling", or raise DeleteRefused (409/422)."""
    current = status_at(facts, now).status
    if current == "approved":
        return "revoking"
    if current == "pending":
        if facts.brand not in CANCELLATION_BRANDS:
            raise DeleteRefused(
                422, "not supported", "cancellation is not supported for this vin", "vin"
            )
        if now - facts.requested_at < CANCEL_MIN_AGE:
            raise DeleteRefused(
                422,
                "too early",
                "the pending status could only be canceled after 1 day it's created",
                "status",
            )
        return "canceling"
    if current in ("revoking", "canceling"):
        raise DeleteRefused(409, "Conflict", "Clearance is in transition mode", "vin")
    raise DeleteRefused(409, "Conflict", "Clearance is already removed", "vin")


def vin_error(vin: object) -> str | None:
    if not isinstance(vin, str) or not vin:
        return "vin can't be blank"
    if len(vin) != 17:
        return "vin should be 17 character(s)"
    return None
