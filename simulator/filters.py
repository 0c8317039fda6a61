"""The ``filter`` parameter of the simulated ``GET /v1/fleets/vehicles``: parsed, then matched."""

from __future__ import annotations

from datetime import UTC, datetime

from untrusted import UntrustedJsonError, parse_json

from .behaviour import Entry
from .errors import ApiError
from .models import SimClearance


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


def matches(clearance: SimClearance, entries: list[Entry], flt: dict) -> bool:
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
                actual_time: datetime | None = clearance.requested_at
            else:
                approved = [e.timestamp for e in entries if e.status == "approved"]
                actual_time = approved[-1] if approved else None
            if not _compare(op, actual_time, _time_value(expected)):
                return False
    return True
