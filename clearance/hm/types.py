"""Typed values exchanged with the High Mobility API.

Framework-free: no Django imports here (the client must be usable on its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar


class ClearanceStatus(str):
    """A clearance status as HM reports it.

    A ``str`` subclass so it compares, hashes and serialises like the raw value. Known values are
    available as class attributes (``ClearanceStatus.APPROVED``). ``parse`` never fails: a value HM
    adds tomorrow is kept as it came (``is_known`` is then False) instead of crashing a sync.
    """

    __slots__ = ()

    KNOWN: ClassVar[tuple[str, ...]] = (
        "pending",
        "approved",
        "rejected",
        "revoking",
        "revoked",
        "canceling",
        "canceled",
        "error",
    )
    # Which statuses are final, defleetable... is FleetPortal's rule: clearance/statuses.py.

    PENDING: ClassVar[ClearanceStatus]
    APPROVED: ClassVar[ClearanceStatus]
    REJECTED: ClassVar[ClearanceStatus]
    REVOKING: ClassVar[ClearanceStatus]
    REVOKED: ClassVar[ClearanceStatus]
    CANCELING: ClassVar[ClearanceStatus]
    CANCELED: ClassVar[ClearanceStatus]
    ERROR: ClassVar[ClearanceStatus]

    @classmethod
    def parse(cls, raw: object) -> ClearanceStatus:
        """Turn whatever HM sent into a status. Never raises."""
        if isinstance(raw, ClearanceStatus):
            return raw
        text = "" if raw is None else str(raw).strip()
        normalised = text.lower()
        if normalised in cls.KNOWN:
            return cls(normalised)
        return cls(text)

    @property
    def value(self) -> str:
        return str.__str__(self)

    @property
    def is_known(self) -> bool:
        return self.value in self.KNOWN

    def __repr__(self) -> str:
        return f"ClearanceStatus({self.value!r})"


for _value in ClearanceStatus.KNOWN:
    setattr(ClearanceStatus, _value.upper(), ClearanceStatus(_value))


# The 28 brand slugs of the fleet clearance spec (hm-fleet-clearance-v1.yml, FleetVehicle.brand).
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

# Brands accepted by POST /v1/eligibility (hm-eligibility-v1.yml, a narrower list).
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

# DELETE of a *pending* clearance (cancel) is only supported for these brands (spec description).
STELLANTIS_BRANDS: tuple[str, ...] = (
    "citroen",
    "ds",
    "opel",
    "peugeot",
    "vauxhall",
    "jeep",
    "fiat",
    "alfaromeo",
    "maserati",
)
CANCELLATION_BRANDS: tuple[str, ...] = (
    "mercedes-benz",
    "volkswagen",
    "audi",
    "skoda",
    "seat",
    "cupra",
    *STELLANTIS_BRANDS,
)

BRAND_LABELS: dict[str, str] = {
    "bmw": "BMW",
    "citroen": "Citroën",
    "ds": "DS",
    "mercedes-benz": "Mercedes-Benz",
    "mini": "MINI",
    "opel": "Opel",
    "peugeot": "Peugeot",
    "vauxhall": "Vauxhall",
    "jeep": "Jeep",
    "fiat": "Fiat",
    "alfaromeo": "Alfa Romeo",
    "ford": "Ford",
    "renault": "Renault",
    "dacia": "Dacia",
    "toyota": "Toyota",
    "lexus": "Lexus",
    "porsche": "Porsche",
    "maserati": "Maserati",
    "kia": "Kia",
    "tesla": "Tesla",
    "volvo-cars": "Volvo Cars",
    "skoda": "Škoda",
    "audi": "Audi",
    "volkswagen": "Volkswagen",
    "seat": "SEAT",
    "cupra": "CUPRA",
    "polestar": "Polestar",
    "sandbox": "Sandbox (HM test vehicles)",
}


def to_vehicle_data_brand(slug: str) -> str:
    """Fleet brand slug -> the vehicle-data spelling (``mercedes-benz`` -> ``mercedes_benz``)."""
    return slug.strip().lower().replace("-", "_")


def from_vehicle_data_brand(name: str) -> str:
    """Vehicle-data brand -> fleet slug (``volvo_cars`` -> ``volvo-cars``).

    A vehicle-data brand with no fleet equivalent (``land_rover``, ``unknown``...) comes back as it
    was, so nothing is lost.
    """
    raw = name.strip().lower()
    candidate = raw.replace("_", "-")
    return candidate if candidate in FLEET_BRANDS else raw


def parse_hm_datetime(raw: object) -> datetime | None:
    """Parse HM's ISO8601 timestamps. Values without a zone are UTC (PROTOCOL.md §2.2)."""
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, str) and raw.strip():
        try:
            value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _list(raw: object) -> list[Any]:
    return raw if isinstance(raw, list) else []


def _tags(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items()}


@dataclass(frozen=True)
class ClearanceRequest:
    """One item of a POST /v1/fleets/vehicles batch."""

    vin: str
    brand: str
    tags: dict[str, str] | None = None
    # Deprecated by HM (control_measures) but still accepted; some OEM flows ask for it.
    control_odometer_km: int | None = None

    def to_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"vin": self.vin, "brand": self.brand}
        if self.tags:
            item["tags"] = {str(k): str(v) for k, v in self.tags.items()}
        if self.control_odometer_km is not None:
            item["control_measures"] = {
                "odometer": {"value": int(self.control_odometer_km), "unit": "kilometers"}
            }
        return item


@dataclass
class ClearanceResult:
    """Per-VIN result of request / delete / cancel_activation."""

    vin: str
    status: ClearanceStatus
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClearanceResult:
        description = data.get("description")
        return cls(
            vin=str(data.get("vin", "")),
            status=ClearanceStatus.parse(data.get("status")),
            description=str(description) if description is not None else None,
            tags=_tags(data.get("tags")),
        )


@dataclass
class ChangelogEntry:
    timestamp: datetime
    status: ClearanceStatus
    reason: str | None = None


@dataclass
class FleetVehicle:
    """A clearance as GET /v1/fleets/vehicles[/{vin}] returns it."""

    vin: str
    status: ClearanceStatus
    brand: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    changelog: list[ChangelogEntry] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FleetVehicle:
        changelog = []
        raw_changelog = data.get("changelog")
        for item in raw_changelog if isinstance(raw_changelog, list) else []:
            if not isinstance(item, dict):
                continue
            timestamp = parse_hm_datetime(item.get("timestamp"))
            if timestamp is None:
                continue
            reason = item.get("reason")
            changelog.append(
                ChangelogEntry(
                    timestamp=timestamp,
                    status=ClearanceStatus.parse(item.get("status")),
                    reason=str(reason) if reason is not None else None,
                )
            )
        changelog.sort(key=lambda entry: entry.timestamp)
        brand = data.get("brand")
        return cls(
            vin=str(data.get("vin", "")),
            status=ClearanceStatus.parse(data.get("status")),
            brand=str(brand) if brand is not None else None,
            tags=_tags(data.get("tags")),
            changelog=changelog,
        )

    @property
    def status_changed_at(self) -> datetime | None:
        """When the current status was reached, from the changelog."""
        for entry in reversed(self.changelog):
            if entry.status == self.status:
                return entry.timestamp
        return self.changelog[-1].timestamp if self.changelog else None

    @property
    def reason(self) -> str | None:
        """The latest reason HM gave (e.g. why it was rejected)."""
        for entry in reversed(self.changelog):
            if entry.reason:
                return entry.reason
        return None


@dataclass
class Token:
    """An application access token (client_credentials or a legacy service-account auth token)."""

    access_token: str = field(repr=False)
    expires_at: datetime
    scope: str = ""

    def is_fresh(self, now: datetime, margin_seconds: float = 60) -> bool:
        return (self.expires_at - now).total_seconds() > margin_seconds

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())

    def to_dict(self) -> dict[str, str]:
        return {
            "access_token": self.access_token,
            "expires_at": self.expires_at.isoformat(),
            "scope": self.scope,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Token:
        expires_at = parse_hm_datetime(data["expires_at"])
        if expires_at is None:
            raise ValueError("token without a valid expiry")
        return cls(
            access_token=str(data["access_token"]),
            expires_at=expires_at,
            scope=str(data.get("scope") or ""),
        )


@dataclass
class VehicleAccessToken:
    """Legacy per-vehicle token (POST /v1/fleets/access_tokens, OAuth2 refresh_token grant)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    authorization_id: str | None = None
    scope: str = ""
    status: str | None = None


@dataclass
class Eligibility:
    vin: str
    eligible: bool
    data_delivery: list[str] = field(default_factory=list)
    connectivity_status: str | None = None
    primary_user_assigned: bool | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Eligibility:
        primary = data.get("primary_user_assigned")
        connectivity = data.get("connectivity_status")
        return cls(
            vin=str(data.get("vin", "")),
            eligible=bool(data.get("eligible")),
            data_delivery=[str(x) for x in _list(data.get("data_delivery"))],
            connectivity_status=str(connectivity) if connectivity is not None else None,
            primary_user_assigned=bool(primary) if primary is not None else None,
        )
