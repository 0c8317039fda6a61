"""CSV export of the fleet, streamed and safe to open in a spreadsheet.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return could be run as a
formula by Excel/LibreOffice (CSV injection); such cells get a leading apostrophe. The import
removes that apostrophe again, so an exported file imports back unchanged (every column the
import reads is exported, odometer_km included).

The file is named after the fleet filter it was made with (``acme-fleet-approved-bmw.csv``), so
several exports of one fleet can be told apart in a downloads folder.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.utils.text import slugify

from clearance.statuses import NOT_REQUESTED
from imports.rows import ESCAPED_PREFIXES, FORMULA_PREFIXES
from vehicles.validation import format_tags

EXPORT_COLUMNS = (
    "vin",
    "brand",
    "license_plate",
    "nickname",
    "tags",
    "odometer_km",
    "status",
    "status_changed_at",
)


def safe_cell(value: Any) -> str:
    """Formula-safe: an apostrophe before a formula character, and before an apostrophe that
    precedes one (the import strips exactly one, see imports.rows)."""
    text = "" if value is None else str(value)
    escape = text.startswith(FORMULA_PREFIXES) or (
        text[:1] == "'" and len(text) > 1 and text[1] in ESCAPED_PREFIXES
    )
    return "'" + text if escape else text


class _Echo:
    """A file-like object whose write() returns the line, for csv.writer in a generator."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[Iterable[Any]], *, bom: bool = True) -> Iterator[str]:
    """Encode rows as CSV text lines (CRLF), every cell made formula-safe."""
    writer = csv.writer(_Echo())
    if bom:
        yield "\ufeff"  # lets Excel recognise UTF-8
    for row in rows:
        yield writer.writerow([safe_cell(cell) for cell in row])


def vehicle_rows(queryset: QuerySet) -> Iterator[list[Any]]:
    """Header + one row per vehicle; reads in chunks, so memory stays flat for large fleets."""

    yield list(EXPORT_COLUMNS)
    queryset = queryset.select_related("clearance")
    for vehicle in queryset.iterator(chunk_size=2000):
        clearance = getattr(vehicle, "clearance", None) if _has_clearance(vehicle) else None
        changed = clearance.status_changed_at if clearance else None
        yield [
            vehicle.vin,
            vehicle.brand,
            vehicle.license_plate,
            vehicle.nickname,
            format_tags(vehicle.tags, ";"),
            vehicle.odometer_km,
            clearance.status if clearance else "",
            changed.astimezone(UTC).isoformat().replace("+00:00", "Z") if changed else "",
        ]


def _has_clearance(vehicle: Any) -> bool:
    try:
        vehicle.clearance  # noqa: B018 - select_related already fetched it
    except Exception:
        return False
    return True


def csv_response(rows: Iterable[Iterable[Any]], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
    # Quoted and escaped (or RFC 5987-encoded) by Django: a name taken from an upload cannot
    # add parameters of its own (`"; filename*=UTF-8''evil.html`).
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def fleet_export_response(
    queryset: QuerySet, filename: str = "fleet.csv", *, flt: Any = None
) -> StreamingHttpResponse:
    """The vehicles as a CSV download; `flt` (the FleetFilter the queryset was built from)
    names the file after the filter."""
    return csv_response(vehicle_rows(queryset), filtered_filename(filename, flt))


MAX_FILENAME_PART = 40


def filtered_filename(filename: str, flt: Any) -> str:
    """The file name with the active filter appended ("acme-fleet.csv", status approved, brand
    bmw -> "acme-fleet-approved-bmw.csv"); unchanged without a filter. Only [a-z0-9-] are added,
    so the name stays readable."""
    if flt is None or not flt.active:
        return filename
    stem, dot, extension = filename.rpartition(".")
    if not dot:
        stem, extension = filename, "csv"
    parts = [
        "not-requested" if flt.status == NOT_REQUESTED else flt.status,
        flt.brand,
        # The id as given, not the application's name: the parameter comes from the URL, and a
        # name looked up by it could belong to another organization.
        f"app-{flt.credential[:8]}" if flt.credential else "",
        f"search-{flt.q}" if flt.q else "",
    ]
    words = [slugify(part)[:MAX_FILENAME_PART].strip("-") for part in parts if part]
    return "-".join([stem, *[word for word in words if word]]) + f".{extension}"
