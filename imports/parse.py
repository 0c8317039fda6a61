"""Streaming reader for fleet CSV files (pure Python, no Django).

``open_fleet_csv(binary_stream)`` detects the encoding, the delimiter and the header, then
``FleetCsv.rows()`` yields one ``RawRow`` at a time, so memory stays flat whatever the file size.
Problems that make the whole file unusable raise ``CsvFileError`` with a message for the user;
problems of a single row are reported on that row and reading goes on.

Encoding: a byte-order mark decides (UTF-8, UTF-16); without one the file is read as UTF-8, and
as Windows-1252 (the "CSV" of Excel in Western Europe, a superset of Latin-1) when it is not valid
UTF-8 but is clearly text. That switch can happen far into the file (the first "ü" in row 5,000):
everything before it was plain ASCII, which reads the same in both, so nothing read so far changes.

Row numbers are the ones a spreadsheet shows: the header is usually row 1, blank lines count,
and a quoted cell spanning several lines is still one row.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from untrusted import storable

COLUMNS = ("vin", "brand", "license_plate", "nickname", "tags", "odometer_km")
REQUIRED_COLUMNS = ("vin", "brand")
DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}

MAX_LINE_CHARS = 64 * 1024
SNIFF_BYTES = 64 * 1024

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

_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "an Excel workbook or another zip file"),
    (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) workbook"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
)
EMPTY_FILE = (
    "The file is empty. Upload a CSV with a header row (vin, brand, …) and one vehicle per row."
)
NO_ROWS = "The file has a header row but no vehicles. Add one vehicle per row below the header."
WINDOWS_1252 = "Windows-1252"
SAVE_AS_HINT = (
    "Save it from your spreadsheet as “CSV UTF-8 (comma delimited)” (Excel) or as CSV with "
    "character set “Unicode (UTF-8)” (LibreOffice, Numbers, Google Sheets) and upload it again."
)


class CsvFileError(Exception):
    """The file as a whole cannot be used; ``str(exc)`` is the message for the user."""

    def __init__(self, message: str, *, row: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.row = row


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
    head = _read_head(stream)
    encoding, label = _detect_encoding(head)
    binary: io.RawIOBase = _Prefixed(head, stream)
    transcoder = None
    if encoding in ("utf-8", "cp1252"):  # no byte-order mark: UTF-8, or else Windows-1252
        binary = transcoder = _Utf8OrWindows1252(binary, start_in_cp1252=encoding == "cp1252")
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
        transcoder: _Utf8OrWindows1252 | None = None,
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
                    _decode_error_message(exc, self._record + 1), row=self._record + 1
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


def _read_head(stream: BinaryIO) -> bytes:
    head = b""
    while len(head) < SNIFF_BYTES:
        chunk = stream.read(SNIFF_BYTES - len(head))
        if not chunk:
            break
        head += chunk
    return head


def _detect_encoding(head: bytes) -> tuple[str, str]:
    if not head.strip():
        raise CsvFileError(EMPTY_FILE)
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise CsvFileError(f"The file is encoded as UTF-32, which is not supported. {SAVE_AS_HINT}")
    if head.startswith(codecs.BOM_UTF8):
        encoding, label = "utf-8-sig", "UTF-8 with BOM"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, label = "utf-16", "UTF-16"
    else:
        for signature, what in _BINARY_SIGNATURES:
            if head.startswith(signature):
                raise CsvFileError(f"This is {what}, not a CSV file. {SAVE_AS_HINT}")
        # Binary files and UTF-16 without a byte-order mark are full of NUL bytes; a stray one
        # in a text file is a damaged cell, reported on its row like one further down.
        if head.count(b"\x00") * 100 > len(head) or _control_bytes(head) > max(8, len(head) // 100):
            raise CsvFileError(
                "The file contains binary data (or UTF-16 text without a byte-order mark), "
                f"so it cannot be read as CSV. {SAVE_AS_HINT}"
            )
        encoding, label = "utf-8", "UTF-8"
    whole_file = len(head) < SNIFF_BYTES
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    try:
        sample = decoder.decode(head, final=whole_file)
    except UnicodeDecodeError as exc:
        if encoding != "utf-8" or not head[: exc.start].isascii():
            raise CsvFileError(_decode_error_message(exc, None)) from None
        # Not UTF-8, and nothing but ASCII before the first non-UTF-8 byte: Windows-1252?
        try:
            sample = head.decode("cp1252")
        except UnicodeDecodeError as cp1252_exc:
            raise CsvFileError(_decode_error_message(cp1252_exc, None)) from None
        encoding, label = "cp1252", WINDOWS_1252
    controls = sum(
        1 for char in sample if unicodedata.category(char) == "Cc" and char not in "\r\n\t"
    )
    if controls > max(8, len(sample) // 100):
        raise CsvFileError(
            f"The file contains binary data, so it cannot be read as CSV. {SAVE_AS_HINT}"
        )
    return encoding, label


_CONTROL_BYTES = tuple(bytes([code]) for code in range(32) if chr(code) not in "\t\n\r")


def _control_bytes(data: bytes) -> int:
    return sum(data.count(byte) for byte in _CONTROL_BYTES)


def _decode_error_message(exc: UnicodeDecodeError, row: int | None) -> str:
    where = f" (at row {row})" if row else ""
    codec = exc.encoding.replace("_", "-").lower()
    if codec.startswith("utf-8"):
        return (
            f"The file is not valid UTF-8{where}: it mixes UTF-8 with another encoding, or it "
            f"uses an encoding other than UTF-8 and Windows-1252 (Latin-1). {SAVE_AS_HINT}"
        )
    if codec in ("cp1252", "windows-1252", "charmap"):  # Python names cp1252 errors "charmap"
        return (
            f"The file is neither UTF-8 nor Windows-1252 (Latin-1) text{where}, so its "
            f"characters cannot be read reliably. {SAVE_AS_HINT}"
        )
    return f"The file could not be decoded as {exc.encoding.upper()}{where}. {SAVE_AS_HINT}"


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


class _Prefixed(io.RawIOBase):
    """Read-only binary stream: the sniffed ``head``, then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._stream.read(len(buffer))
        if not data:
            return 0
        buffer[: len(data)] = data
        return len(data)


class _Utf8OrWindows1252(io.RawIOBase):
    """Binary stream handing on ``raw`` as UTF-8: decoded as UTF-8 while the bytes are valid
    UTF-8, as Windows-1252 from the first byte that is not (if everything before it was ASCII,
    which both encodings read the same). A file mixing UTF-8 and another encoding still fails,
    as does a byte Windows-1252 does not define (0x81, 0x8D, 0x8F, 0x90, 0x9D).
    """

    _CHUNK = 8 * 1024  # as TextIOWrapper reads: a decoding error is reported near its row

    def __init__(self, raw: io.RawIOBase, *, start_in_cp1252: bool = False) -> None:
        self._raw = raw
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self._ascii_so_far = True  # every byte handed on so far was ASCII
        self.windows_1252 = start_in_cp1252
        self._out = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out and not self._eof:
            data = self._raw.read(self._CHUNK)
            if not data:
                self._eof = True
            self._out = memoryview(self._convert(data or b"", final=not data))
        size = min(len(buffer), len(self._out))
        buffer[:size] = self._out[:size]
        self._out = self._out[size:]
        return size

    def _convert(self, data: bytes, *, final: bool) -> bytes:
        if self.windows_1252:
            return data.decode("cp1252").encode("utf-8") if data else b""
        if self._ascii_so_far and data.isascii() and not self._utf8.getstate()[0]:
            return data  # the common case: plain ASCII is the same in every encoding here
        pending = self._utf8.getstate()[0]
        try:
            text = self._utf8.decode(data, final=final)
        except UnicodeDecodeError as exc:
            if not self._ascii_so_far or not (pending + data)[: exc.start].isascii():
                raise
            self.windows_1252 = True
            return (pending + data).decode("cp1252").encode("utf-8")
        if not text.isascii():
            self._ascii_so_far = False
        return text.encode("utf-8")
