"""Row validation for fleet CSV files (pure Python, no Django).

``RowValidator.validate(raw_row)`` turns a ``RawRow`` from ``parse.py`` into a ``VehicleRow``
with typed values, errors and warnings. Every issue names its row number and its column (as the
header is written in the file). Duplicates inside the file are found here; VINs already in the
fleet are the service's business (it needs the database).
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass, field

from imports.parse import CsvLayout, RawRow
from untrusted import storable, unstorable_character
from vehicles.validation import (
    MAX_LICENSE_PLATE,
    MAX_NICKNAME,
    InvalidValue,
    normalize_vin,
    parse_brand,
    parse_odometer,
    parse_tags,
)

# Our own export prefixes these with an apostrophe (formula-injection guard), and an apostrophe
# before them or before another apostrophe too, so that "'=x" survives; the import strips one
# leading apostrophe before them, so an exported file imports back unchanged.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
ESCAPED_PREFIXES = (*FORMULA_PREFIXES, "'")
_ESCAPED = frozenset(ESCAPED_PREFIXES)
_LOOKS_LIKE_FORMULA = re.compile(r"^(=|@|[+-]\s*[A-Za-z(])")
SOURCE_VIN_MAX = 100
BRAND_SPELLINGS_KEPT = (
    1000  # the VIN cell as written, in the error report (a wrong column can be long)
)


@dataclass(frozen=True, slots=True)
class RowIssue:
    row: int
    column: str  # the header as written in the file; "" for the whole row
    message: str

    def __str__(self) -> str:
        where = f"Row {self.row}, {self.column}" if self.column else f"Row {self.row}"
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass(slots=True)
class VehicleRow:
    row: int
    vin: str = ""
    source_vin: str = ""  # the VIN cell as written in the file, also when it is not a valid VIN
    brand: str = ""
    license_plate: str = ""
    nickname: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    odometer_km: int | None = None
    errors: list[RowIssue] = field(default_factory=list)
    warnings: list[RowIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def changes_for(self, current: dict[str, object]) -> dict[str, object]:
        """Fields this row would change on an existing vehicle (empty cells never clear a value)."""
        wanted: dict[str, object] = {}
        if self.license_plate:
            wanted["license_plate"] = self.license_plate
        if self.nickname:
            wanted["nickname"] = self.nickname
        if self.tags:
            wanted["tags"] = {**(current.get("tags") or {}), **self.tags}  # type: ignore[dict-item]
        if self.odometer_km is not None:
            wanted["odometer_km"] = self.odometer_km
        return {name: value for name, value in wanted.items() if current.get(name) != value}


class RowValidator:
    """Validates rows in file order and remembers VINs seen, to report duplicates."""

    def __init__(self, layout: CsvLayout) -> None:
        self.layout = layout
        self._seen = VinIndex()
        self._brands: dict[str, str | InvalidValue] = {}

    def validate(self, raw: RawRow) -> VehicleRow:
        result = VehicleRow(row=raw.row)
        for problem in raw.problems:
            result.errors.append(RowIssue(raw.row, "", problem))
        if raw.problems and not any(raw.values.values()):
            return result  # a broken record (bad quoting): nothing else to check
        values = {
            name: value[1:] if value[:1] == "'" and value[1:2] in _ESCAPED else value
            for name, value in raw.values.items()
        }  # one apostrophe before an escaped prefix is dropped (see FORMULA_PREFIXES)
        result.source_vin = raw.values["vin"][:SOURCE_VIN_MAX]
        # A cell the database cannot store is an error of its own and is not checked further
        # (other messages quote the value, and messages are stored with the preview).
        unstorable = set()
        if unstorable_character("".join(values.values())):  # one search for a clean row
            result.source_vin = storable(result.source_vin)
            for name, value in values.items():
                character = unstorable_character(value)
                if character:
                    result.errors.append(self._issue(name, raw.row, _unstorable_message(character)))
                    unstorable.add(name)
                    values[name] = ""
        if "vin" not in unstorable:
            self._check_vin(values["vin"], result)
        if "brand" not in unstorable:
            try:
                result.brand = self._brand(values["brand"])
            except InvalidValue as exc:
                result.errors.append(self._issue("brand", raw.row, str(exc)))
        self._check_text("license_plate", values["license_plate"], MAX_LICENSE_PLATE, result)
        self._check_text("nickname", values["nickname"], MAX_NICKNAME, result)
        if values["tags"]:
            try:
                result.tags = parse_tags(values["tags"])
            except InvalidValue as exc:
                result.errors.append(self._issue("tags", raw.row, str(exc)))
        if values["odometer_km"]:
            try:
                result.odometer_km = parse_odometer(values["odometer_km"])
            except InvalidValue as exc:
                result.errors.append(self._issue("odometer_km", raw.row, str(exc)))
        return result

    def _brand(self, value: str) -> str:
        """``parse_brand``, remembered per spelling: a file spells its few brands the same way
        on thousands of rows."""
        known = self._brands.get(value)
        if known is None:
            try:
                known = parse_brand(value)
            except InvalidValue as exc:
                known = exc
            if len(self._brands) < BRAND_SPELLINGS_KEPT:
                self._brands[value] = known
        if isinstance(known, InvalidValue):
            raise InvalidValue(str(known))
        return known

    def _issue(self, column: str, row: int, message: str) -> RowIssue:
        return RowIssue(row, self.layout.label(column), message)

    def _check_vin(self, value: str, result: VehicleRow) -> None:
        try:
            vin, warnings = normalize_vin(value)
        except InvalidValue as exc:
            result.errors.append(self._issue("vin", result.row, str(exc)))
            return
        result.vin = vin
        result.warnings.extend(self._issue("vin", result.row, message) for message in warnings)
        first = self._seen.add(vin, result.row)
        if first is not None:
            result.errors.append(
                self._issue(
                    "vin", result.row, f"The VIN {vin} already appears in row {first} of this file."
                )
            )

    def _check_text(self, column: str, value: str, limit: int, result: VehicleRow) -> None:
        if not value:
            return
        if len(value) > limit:
            message = (
                f"“{value[:30]}…” is {len(value)} characters long; at most {limit} are allowed."
            )
            result.errors.append(self._issue(column, result.row, message))
            return
        if _LOOKS_LIKE_FORMULA.match(value):
            result.warnings.append(
                self._issue(
                    column,
                    result.row,
                    f"“{value[:30]}” looks like a spreadsheet formula; it is stored as plain "
                    "text and exported with a leading apostrophe so it never runs.",
                )
            )
        setattr(result, column, value)


_MASK_64 = (1 << 64) - 1


class VinIndex:
    """VIN -> first row, in about 12 bytes per VIN (a dict of str would take ~130).

    Open addressing over two flat arrays holding a 64-bit fingerprint of the VIN (Python's own
    string hash: an index lives for one pass in one process) and the row number. Two different VINs sharing a fingerprint (odds ~1e-9 for a million rows) would be
    reported as duplicates; we accept that for flat memory on 100k-row files.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._keys = array("Q", [0]) * capacity
        self._rows = array("I", [0]) * capacity
        self._mask = capacity - 1
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, vin: str, row: int) -> int | None:
        """Remember ``vin`` at ``row``; return the earlier row if the VIN was seen before."""
        key = (hash(vin) & _MASK_64) or 1
        slot = self._find(key)
        if self._keys[slot] == key:
            return self._rows[slot]
        self._keys[slot] = key
        self._rows[slot] = row
        self._size += 1
        if self._size * 3 > self._mask * 2:
            self._grow()
        return None

    def _find(self, key: int) -> int:
        slot = key & self._mask
        keys = self._keys
        while keys[slot] not in (0, key):
            slot = (slot + 1) & self._mask
        return slot

    def _grow(self) -> None:
        old = zip(self._keys, self._rows, strict=True)
        capacity = (self._mask + 1) * 2
        self._keys = array("Q", [0]) * capacity
        self._rows = array("I", [0]) * capacity
        self._mask = capacity - 1
        for key, row in old:
            if key:
                slot = self._find(key)
                self._keys[slot] = key
                self._rows[slot] = row


def _unstorable_message(problem: str) -> str:
    return (
        f"This cell contains {problem}, which cannot be stored; it usually comes from a damaged "
        "export. Remove it (retype the cell) and upload the file again."
    )
