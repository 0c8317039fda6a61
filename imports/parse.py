"""Streaming reader for fleet CSV files (pure Python, no Django).

``open_fleet_csv(binary_stream)`` detects the encoding, the delimiter and the header, then
``FleetCsv.rows()`` yields one ``RawRow`` at a time, so memory stays flat whatever the file size.
Problems that make the whole file unusable raise ``CsvFileError`` with a message for the user;
problems of a single row are reported on that row and reading goes on.

Encoding (``imports.encoding``): a byte-order mark decides (UTF-8, UTF-16); without one UTF-8,
and Windows-1252 from the first byte that is not UTF-8, which can happen far into the file (the
first "ü" in row 5,000): everything before it was plain ASCII, which reads the same in both.

Row numbers are the ones a spreadsheet shows: the header is usually row 1, blank lines count,
and a quoted cell spanning several lines is still one row.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from imports.encoding import (
    EMPTY_FILE,
    WINDOWS_1252,
    CsvFileError,
    Prefixed,
    Utf8OrWindows1252,
    decode_error_message,
    detect_encoding,
    read_head,
)
from untrusted import storable

COLUMNS = ("vin", "brand", "license_plate", "nickname", "tags", "odometer_km")
REQUIRED_COLUMNS = ("vin", "brand")
DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}

MAX_LINE_CHARS = 64 * 1024

# Header spellings (compacted: lower-case letters and digits only) -> canonical column.
HEADER_ALIASES: dict[str, str] = {
    **{name.replace("_", ""): name for name in COLUMNS},
    "vehicleidentificationnumber": "vin",
    "vinnumber": "vin",
    "vincode": "vin",
    "chassisnumber": "vin",
    "fin": "vin",  # German "Fahrzeug-Identifizierungsnummer"
    "make": "brand",
    "manufacturer": "brand",
    "oem": "brand",
    "marque": "brand",
    "carmaker": "brand",
    "marke": "brand",
    "licenceplate": "license_plate",
    "plate": "license_plate",
    "plates": "license_plate",
    "platenumber": "license_plate",
    "licenseplatenumber": "license_plate",
    "licenceplatenumber": "license_plate",
    "numberplate": "license_plate",
    "registration": "license_plate",
    "registrationnumber": "license_plate",
    "registrationplate": "license_plate",
    "reg": "license_plate",
    "regno": "license_plate",
    "kennzeichen": "license_plate",
    "name": "nickname",
    "nick": "nickname",
    "vehiclename": "nickname",
    "alias": "nickname",
    "label": "nickname",
    "tag": "tags",
    "labels": "tags",
    "odometer": "odometer_km",
    "odometerkm": "odometer_km",
    "mileage": "odometer_km",
    "mileagekm": "odometer_km",
    "km": "odometer_km",
    "kilometres": "odometer_km",
    "kilometers": "odometer_km",
    "kmstand": "odometer_km",
}

NO_ROWS = "The file has a header row but no vehicles. Add one vehicle per row below the header."


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """What was detected about the file."""

    encoding: str  # Python codec name used to decode
    encoding_label: str  # for people: "UTF-8", "UTF-8 with BOM", "UTF-16", "Windows-1252"
    delimiter: str
    header_row: int
    columns: dict[str, int]  # canonical column -> cell index
    labels: dict[str, str]  # canonical column -> the header as written in the file
    unknown_columns: tuple[str, ...]
    header_width: int

    @property
    def delimiter_name(self) -> str:
        return DELIMITER_NAMES[self.delimiter]

    def label(self, column: str) -> str:
        return self.labels.get(column, column)


@dataclass(slots=True)
class RawRow:
    """One data row: stripped text per known column ('' when absent) and row-level problems."""

    row: int
    values: dict[str, str]
    problems: list[str] = field(default_factory=list)


def open_fleet_csv(stream: BinaryIO, *, max_line_chars: int = MAX_LINE_CHARS) -> FleetCsv:
    """Detect encoding, delimiter and header of ``stream`` (binary); raise ``CsvFileError``."""
    head = read_head(stream)
    encoding, label = detect_encoding(head)
    binary: io.RawIOBase = Prefixed(head, stream)
    transcoder = None
    if encoding in ("utf-8", "cp1252"):  # no byte-order mark: UTF-8, or else Windows-1252
        binary = transcoder = Utf8OrWindows1252(binary, start_in_cp1252=encoding == "cp1252")
        encoding = "utf-8"  # what the transcoder hands on
    text = io.TextIOWrapper(binary, encoding=encoding, errors="strict", newline="")  # type: ignore[type-var]
    return FleetCsv(
        text,
        encoding=encoding,
        encoding_label=label,
        max_line_chars=max_line_chars,
        transcoder=transcoder,
    )


class FleetCsv:
    """An opened fleet CSV: ``layout`` is known, ``rows()`` streams the data rows once.

    ``layout.encoding_label`` is final only once ``rows()`` is exhausted: a file that looked like
    UTF-8 at the start may turn out to be Windows-1252 further down.
    """

    def __init__(
        self,
        text: io.TextIOBase,
        *,
        encoding: str,
        encoding_label: str,
        max_line_chars: int,
        transcoder: Utf8OrWindows1252 | None = None,
    ) -> None:
        self._text = text
        self._max_line_chars = max_line_chars
        self._transcoder = transcoder
        self._record = 0  # spreadsheet row of the last record read
        self.data_rows = 0
        lines = self._lines()
        header_row, header_line, delimiter, cells = self._find_header(lines)
        self._reader = csv.reader(
            itertools.chain([header_line], lines), delimiter=delimiter, strict=True
        )
        try:
            next(self._reader)  # the header again, now through the same reader as the data
        except csv.Error as exc:
            raise CsvFileError(
                f"Row {header_row} (the header): {_csv_error_message(exc)}"
            ) from None
        self._layout = _build_layout(cells, encoding, encoding_label, delimiter, header_row)

    @property
    def layout(self) -> CsvLayout:
        switched = self._transcoder is not None and self._transcoder.windows_1252
        if switched and self._layout.encoding != "cp1252":
            self._layout = replace(self._layout, encoding="cp1252", encoding_label=WINDOWS_1252)
        return self._layout

    # -- reading -------------------------------------------------------------------------------
    def _lines(self) -> Iterator[str]:
        limit = self._max_line_chars
        while True:
            try:
                line = self._text.readline(limit + 1)
            except UnicodeDecodeError as exc:
                raise CsvFileError(
                    decode_error_message(exc, self._record + 1), row=self._record + 1
                ) from None
            if not line:
                return
            if len(line) > limit and not line.endswith(("\n", "\r")):
                row = self._record + 1
                raise CsvFileError(
                    f"Row {row} is longer than {limit // 1024} KB without a line break, so this "
                    "does not look like a fleet list (one vehicle per line). Check that the file "
                    "is a CSV export.",
                    row=row,
                )
            yield line

    def _find_header(self, lines: Iterator[str]) -> tuple[int, str, str, list[str]]:
        for line in lines:
            self._record += 1
            if not line.strip(" \t\r\n,;"):
                continue
            delimiter, cells = _detect_delimiter(line)
            return self._record, line, delimiter, cells
        raise CsvFileError(EMPTY_FILE)

    def rows(self) -> Iterator[RawRow]:
        """Yield data rows one at a time; raises ``CsvFileError`` when the file breaks mid-way."""
        columns = self.layout.columns
        width = self.layout.header_width
        while True:
            row = self._record + 1
            try:
                cells = next(self._reader)
            except StopIteration:
                break
            except csv.Error as exc:  # one broken record; the reader resumes on the next line
                self._record = row
                self.data_rows += 1
                yield RawRow(
                    row=row, values=dict.fromkeys(COLUMNS, ""), problems=[_csv_error_message(exc)]
                )
                continue
            self._record = row
            if not any(cell.strip() for cell in cells):
                continue  # blank line (or only delimiters, as spreadsheets export empty rows)
            self.data_rows += 1
            values = dict.fromkeys(COLUMNS, "")
            for name, index in columns.items():
                if index < len(cells):
                    values[name] = cells[index].strip()
            problems = []
            if len(cells) > width and any(cell.strip() for cell in cells[width:]):
                problems.append(
                    f"This row has {len(cells)} cells but the header has {width}; a value "
                    f"containing a {self.layout.delimiter_name} probably needs quotes around it."
                )
            yield RawRow(row=row, values=values, problems=problems)
        if self.data_rows == 0:
            raise CsvFileError(NO_ROWS)


def _compact_header(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    return re.sub(r"[^a-z0-9]", "", decomposed)


def _detect_delimiter(line: str) -> tuple[str, list[str]]:
    best: tuple[int, int, int, list[str]] | None = None
    for index, delimiter in enumerate(DELIMITERS):
        try:
            cells = next(csv.reader([line], delimiter=delimiter))
        except (csv.Error, StopIteration):
            continue
        known = sum(1 for cell in cells if _compact_header(cell) in HEADER_ALIASES)
        score = (known, len(cells), -index)
        if best is None or score > best[:3]:
            best = (known, len(cells), -index, cells)
    assert best is not None
    known, _count, negative_index, cells = best
    return DELIMITERS[-negative_index], cells


def _build_layout(
    cells: list[str], encoding: str, label: str, delimiter: str, header_row: int
) -> CsvLayout:
    cells = [storable(cell) for cell in cells]  # labels are shown and stored with the preview
    columns: dict[str, int] = {}
    labels: dict[str, str] = {}
    unknown: list[str] = []
    for index, raw in enumerate(cells):
        header = raw.strip().lstrip("\ufeff")
        if not header:
            continue
        name = HEADER_ALIASES.get(_compact_header(header))
        if name is None:
            unknown.append(header[:60])
        elif name in columns:
            raise CsvFileError(
                f"The columns “{labels[name]}” and “{header[:60]}” both mean {name}; "
                "keep only one of them.",
                row=header_row,
            )
        else:
            columns[name] = index
            labels[name] = header[:60]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        found = (
            ", ".join(f"“{cell.strip()[:40]}”" for cell in cells[:12] if cell.strip()) or "nothing"
        )
        raise CsvFileError(
            f"Row {header_row} should be the header naming the columns; the required column"
            f"{'s' if len(missing) > 1 else ''} {' and '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} missing (found {found}). "
            "Required: vin, brand; optional: license_plate, nickname, tags, odometer_km.",
            row=header_row,
        )
    return CsvLayout(
        encoding=encoding,
        encoding_label=label,
        delimiter=delimiter,
        header_row=header_row,
        columns=columns,
        labels=labels,
        unknown_columns=tuple(unknown),
        header_width=len(cells),
    )


def _csv_error_message(exc: csv.Error) -> str:
    text = str(exc)
    if "unexpected end of data" in text:
        return (
            "A quotation mark opened in this row is never closed, so the rest of the file "
            "was read as one cell."
        )
    if "field larger than field limit" in text:
        return (
            "A cell in this row is larger than 128 KB, probably because a quotation mark "
            "is never closed."
        )
    if "expected after" in text:
        return (
            "A quotation mark in this row is misplaced: a quoted cell must end right before "
            "the delimiter."
        )
    return f"This row is not valid CSV ({text})."
