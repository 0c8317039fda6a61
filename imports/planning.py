"""Planning an import without writing anything: read the file once, validate every row and
sort each batch into new / update / unchanged / invalid with one query per batch.

The same plan serves the preview, the error report, the import itself and the
``vehicles_import`` command; nothing grows with the file except the duplicate index (about 12
bytes per VIN). A preview taken before the fleet changed is stale and must be checked again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max

from imports.models import ImportJob
from imports.parse import WINDOWS_1252, CsvLayout, FleetCsv, open_fleet_csv
from imports.rows import RowIssue, RowValidator, VehicleRow
from organizations.models import Organization
from vehicles.models import Vehicle

# The preview groups identical messages over the whole file: per level it keeps at most
# ERROR_SAMPLE_SIZE different messages, each with its count and the first ROWS_PER_MESSAGE rows.
ERROR_SAMPLE_SIZE = 50
ROWS_PER_MESSAGE = 200
PLAN_BATCH_SIZE = 2000
_CURRENT_FIELDS = ("id", "vin", "brand", "license_plate", "nickname", "tags", "odometer_km")


class ImportRejected(Exception):
    """The request cannot be done; ``str(exc)`` is the message for the user."""


class PreviewStale(ImportRejected):
    """The fleet changed since the preview: its counts are out of date; check the file again."""


@dataclass(slots=True)
class PlannedBatch:
    rows: int = 0
    all_rows: list[VehicleRow] = field(default_factory=list)
    new: list[VehicleRow] = field(default_factory=list)
    updates: list[tuple[dict[str, Any], VehicleRow, dict[str, Any]]] = field(default_factory=list)
    unchanged: list[VehicleRow] = field(default_factory=list)
    invalid: list[VehicleRow] = field(default_factory=list)
    warnings: list[RowIssue] = field(default_factory=list)


@dataclass(slots=True)
class Counts:
    total: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: int = 0
    warnings: int = 0
    queued_requests: int = 0

    def add_plan(self, batch: PlannedBatch) -> None:
        self.total += batch.rows
        self.created += len(batch.new)
        self.updated += len(batch.updates)
        self.skipped += len(batch.unchanged)
        self.errors += len(batch.invalid)
        self.warnings += len(batch.warnings)

    def as_fields(self) -> dict[str, int]:
        return {
            "total": self.total,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "errors": self.errors,
            "warnings": self.warnings,
            "queued_requests": self.queued_requests,
        }


def open_plan(
    stream: BinaryIO,
    organization: Organization,
    *,
    update_existing: bool,
    batch_size: int | None = None,
) -> tuple[CsvLayout, Iterator[PlannedBatch]]:
    """Open the file (raises ``CsvFileError``) and return its layout and a lazy batch iterator."""
    csv_file, batches = _open_plan(
        stream, organization, update_existing=update_existing, batch_size=batch_size
    )
    return csv_file.layout, batches


def _open_plan(
    stream: BinaryIO,
    organization: Organization,
    *,
    update_existing: bool,
    batch_size: int | None = None,
) -> tuple[FleetCsv, Iterator[PlannedBatch]]:
    csv_file = open_fleet_csv(stream)
    validator = RowValidator(csv_file.layout)
    # Checked in pieces of at most PLAN_BATCH_SIZE rows (one query each), whatever the size of
    # the import's batches: the rows of a piece are what the check holds in memory.
    size = batch_size or min(settings.IMPORT_BATCH_SIZE, PLAN_BATCH_SIZE)

    def batches() -> Iterator[PlannedBatch]:
        pending: list[VehicleRow] = []
        for raw in csv_file.rows():
            pending.append(validator.validate(raw))
            if len(pending) >= size:
                yield _classify(pending, organization, update_existing)
                pending = []
        if pending:
            yield _classify(pending, organization, update_existing)

    return csv_file, batches()


def _classify(
    rows: list[VehicleRow], organization: Organization, update_existing: bool
) -> PlannedBatch:
    batch = PlannedBatch(rows=len(rows), all_rows=rows)
    valid = [row for row in rows if row.ok]
    existing = {current["vin"]: current for current in current_vehicles(organization.pk, valid)}
    for row in rows:
        batch.warnings.extend(row.warnings)
        if not row.ok:
            batch.invalid.append(row)
            continue
        current = existing.get(row.vin)
        if current is None:
            batch.new.append(row)
            continue
        if current["brand"] != row.brand:
            issue = RowIssue(
                row.row,
                "brand",
                f"{row.vin} is already in the fleet as {current['brand']}; its brand is not changed.",
            )
            if issue not in row.warnings:  # classified again after a conflict
                row.warnings.append(issue)
            batch.warnings.append(issue)
        changes = row.changes_for(current) if update_existing else {}
        if changes:
            batch.updates.append((current, row, changes))
        else:
            batch.unchanged.append(row)
    return batch


def current_vehicles(organization_id: int, rows: list[VehicleRow]) -> Iterable[dict[str, Any]]:
    """The fleet's vehicles with the VINs of ``rows`` (``_CURRENT_FIELDS``). On PostgreSQL the
    VINs go as one array parameter: binding 2,000 separate ones took the driver longer than
    PostgreSQL took to answer."""
    vehicles = Vehicle.objects.filter(organization_id=organization_id)
    if not rows:
        return []
    vins = [row.vin for row in rows]
    if connection.vendor == "postgresql":
        vin = f"{connection.ops.quote_name(Vehicle._meta.db_table)}.vin"
        # The column is the model's own; the VINs are one parameter.
        matching = vehicles.extra(where=[f"{vin} = ANY(%s)"], params=[vins])  # noqa: S610
        return matching.values(*_CURRENT_FIELDS)
    return vehicles.filter(vin__in=vins).values(*_CURRENT_FIELDS)


def plan_file(
    stream: BinaryIO,
    organization: Organization,
    *,
    update_existing: bool,
    on_batch: Callable[[Counts], None] | None = None,
) -> tuple[CsvLayout, Counts, list[dict[str, Any]]]:
    """Validate the whole file without writing: layout, counts and the first errors."""
    plan = plan_issues(stream, organization, update_existing=update_existing, on_batch=on_batch)
    return plan.layout, plan.counts, plan.errors


class IssueGroups:
    """Identical issues (same column, same words) of a whole file as one entry each: the first
    issue's fields plus ``count`` and ``rows`` (the first ROWS_PER_MESSAGE row numbers)."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, issue: dict[str, Any]) -> None:
        key = (str(issue.get("column") or ""), str(issue.get("message", "")))
        group = self.groups.get(key)
        if group is None:
            if len(self.groups) >= ERROR_SAMPLE_SIZE:
                return
            group = self.groups[key] = {**issue, "count": 0, "rows": []}
        group["count"] += 1
        if len(group["rows"]) < ROWS_PER_MESSAGE:
            group["rows"].append(issue.get("row"))

    def as_list(self) -> list[dict[str, Any]]:
        return list(self.groups.values())


@dataclass(slots=True)
class Plan:
    layout: CsvLayout  # final: the encoding may be known only at the end of the file
    counts: Counts
    errors: list[dict[str, Any]]  # the first ERROR_SAMPLE_SIZE different errors (IssueGroups)
    warnings: list[dict[str, Any]]  # the first ERROR_SAMPLE_SIZE different warnings

    @property
    def sample(self) -> list[dict[str, Any]]:
        """What ImportJob.error_sample keeps: the first errors, then the first warnings."""
        return [
            *({**issue, "level": "error"} for issue in self.errors),
            *({**issue, "level": "warning"} for issue in self.warnings),
        ]


def plan_issues(
    stream: BinaryIO,
    organization: Organization,
    *,
    update_existing: bool,
    on_batch: Callable[[Counts], None] | None = None,
    stage: Callable[[PlannedBatch], None] | None = None,
) -> Plan:
    """Validate the whole file: layout, counts, its errors and warnings grouped by message. ``stage(batch)``
    receives every planned batch (the import stages its valid rows: validated once)."""
    csv_file, batches = _open_plan(stream, organization, update_existing=update_existing)
    counts = Counts()
    errors = IssueGroups()
    warnings = IssueGroups()
    for batch in batches:
        if stage:
            stage(batch)
        counts.add_plan(batch)
        for row in batch.invalid:
            for issue in row.errors:
                errors.add(issue.as_dict())
        for issue in batch.warnings:
            warnings.add(issue.as_dict())
        if on_batch:
            on_batch(counts)
    return Plan(csv_file.layout, counts, errors.as_list(), warnings.as_list())


def layout_summary(layout: CsvLayout) -> dict[str, Any]:
    return {
        "encoding": layout.encoding_label,
        "windows_1252": layout.encoding_label == WINDOWS_1252,
        "delimiter": layout.delimiter_name,
        "columns": {name: layout.label(name) for name in layout.columns},
        "unknown_columns": list(layout.unknown_columns),
        "header_row": layout.header_row,
    }


def sample_issues(job: ImportJob, level: str) -> list[dict[str, Any]]:
    """The job's first errors (``level="error"``) or warnings, as the preview shows them."""
    return [issue for issue in job.error_sample if issue.get("level", "error") == level]


# -- a preview that is out of date -------------------------------------------------------------
def fleet_state(organization: Organization) -> str:
    """A fingerprint of the fleet that changes when a vehicle is added, removed or edited.

    Kept with the preview: if it differs at confirmation, the preview's counts (new, to update,
    skipped) no longer describe what the import would do.
    """
    state = Vehicle.objects.filter(organization=organization).aggregate(
        count=Count("id"), created=Max("created_at"), updated=Max("updated_at")
    )
    stamps = [value.isoformat() if value else "-" for value in (state["created"], state["updated"])]
    return ":".join([str(state["count"]), *stamps])


def preview_is_stale(job: ImportJob) -> bool:
    """True when the fleet changed since this preview was made (its counts may be wrong)."""
    recorded = (job.layout or {}).get("fleet_state")
    if job.status != ImportJob.Status.PREVIEW or not recorded:
        return False
    return recorded != fleet_state(job.organization)


STALE_PREVIEW = (
    "The fleet changed since this file was checked (vehicles were added, edited or removed, "
    "for example by another import), so the numbers in this preview may be wrong. Nothing was "
    "imported. Check the file again to see what it would do now."
)
