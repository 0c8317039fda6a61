"""What the API reads and answers, as typed schemas (the OpenAPI document is made from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

# Plain pydantic models: the API reads and answers dicts, never ORM objects, so ninja.Schema's
# attribute resolution (a third of a 1,000-item answer's time) buys nothing.
Schema = BaseModel

MAX_BATCH = 1000


class ErrorDetail(Schema):
    field: str = Field(
        description="The item and field, e.g. “vehicles[3].vin”; “” for the whole request."
    )
    message: str


class ErrorBody(Schema):
    code: str = Field(description="Machine-readable, e.g. “not_found”; see docs/api.md.")
    message: str = Field(description="What went wrong, in words a person understands.")
    details: list[ErrorDetail]


class ErrorOut(Schema):
    error: ErrorBody


class HMApplicationOut(Schema):
    id: UUID
    name: str
    environment: str


class ClearanceOut(Schema):
    status: str = Field(
        description="queued, pending, approved, rejected, revoking, revoked, canceling, canceled, error; “none” when never requested."
    )
    status_words: str = Field(description="What the status means, as the fleet page says it.")
    since: datetime | None = Field(description="When the vehicle entered this status.")
    last_error: str | None
    last_error_at: datetime | None
    reason: str | None = Field(description="High Mobility's explanation (e.g. a rejection reason).")
    hm_application: HMApplicationOut | None


class PositionOut(Schema):
    latitude: float
    longitude: float


class TelemetrySummaryOut(Schema):
    captured_at: datetime
    fresh: bool = Field(
        description="False when the data is older than the portal's staleness limit."
    )
    odometer_km: float | None
    battery_level: float | None = Field(description="0.0 to 1.0")
    fuel_level: float | None = Field(description="0.0 to 1.0")
    estimated_range_km: float | None
    position: PositionOut | None


class VehicleOut(Schema):
    id: UUID
    vin: str
    brand: str
    brand_name: str
    license_plate: str
    nickname: str
    tags: dict[str, str]
    odometer_km: int | None
    added_at: datetime
    last_seen_at: datetime | None
    clearance: ClearanceOut
    telemetry: TelemetrySummaryOut | None


class VehiclePage(Schema):
    items: list[VehicleOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page."
    )


class EventOut(Schema):
    from_status: str
    to_status: str
    at: datetime
    source: str
    by: str | None
    detail: str


class EventPage(Schema):
    items: list[EventOut]
    next_cursor: str | None


class TelemetryOut(Schema):
    captured_at: datetime
    received_at: datetime
    source: str
    odometer_km: float | None
    battery_level: float | None
    fuel_level: float | None
    estimated_range_km: float | None
    charging_state: str
    position: PositionOut | None
    heading_deg: float | None
    speed_kmh: float | None
    ignition: str
    doors_locked: bool | None


class TelemetryPage(Schema):
    items: list[TelemetryOut]
    next_cursor: str | None


class VehicleIn(Schema):
    vin: str = Field(max_length=100)
    brand: str = Field(
        max_length=100, description="HM's slug (“volkswagen”) or the name people use (“VW”)."
    )
    license_plate: str = Field("", max_length=200)
    nickname: str = Field("", max_length=1000)
    tags: dict[str, str] | str = Field(
        default_factory=dict,
        description="An object, or text as on the pages: “vans; depot=berlin”.",
    )
    odometer_km: int | None = None


class VehicleBatchIn(Schema):
    vehicles: list[VehicleIn] = Field(max_length=MAX_BATCH, min_length=1)
    hm_application: UUID | None = Field(
        None,
        description="The HM application the clearance requests are sent with; optional when the organization has only one.",
    )


class ItemIssue(Schema):
    field: str
    message: str


class VehicleResult(Schema):
    index: int
    vin: str
    result: Literal["created", "refused"]
    errors: list[ItemIssue]
    warnings: list[ItemIssue]
    vehicle: VehicleOut | None


class VehicleBatchOut(Schema):
    created: int
    refused: int
    items: list[VehicleResult]


class DefleetIn(Schema):
    vins: list[str] = Field(max_length=MAX_BATCH, min_length=1)


class DefleetResult(Schema):
    index: int
    vin: str
    result: Literal["accepted", "refused", "not_found"]
    status: str = Field(description="The clearance status now (“none” when never requested).")
    message: str


class DefleetOut(Schema):
    accepted: int
    refused: int
    items: list[DefleetResult]


class ChangeOut(Schema):
    kind: Literal["clearance.changed", "vehicle.added", "vehicle.removed"]
    vin: str
    from_status: str | None
    to_status: str | None
    at: datetime
    source: str | None
    detail: str


class ChangePage(Schema):
    items: list[ChangeOut]
    next_cursor: str = Field(description="Always present: store it and ask with it next time.")
    has_more: bool


def dump(schema: Schema) -> dict[str, Any]:
    return schema.model_dump(mode="json")
