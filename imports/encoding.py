"""The encoding of an uploaded CSV: a byte-order mark decides (UTF-8, UTF-16); without one the
file is read as UTF-8, and as Windows-1252 (the "CSV" of Excel in Western Europe) from the first
byte that is not UTF-8 when everything before it was ASCII, which both read the same. Binary
files (workbooks, PDFs, images) are refused in words. Pure Python, no Django."""

from __future__ import annotations

import codecs
import io
import unicodedata
from typing import Any, BinaryIO

SNIFF_BYTES = 64 * 1024

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


def read_head(stream: BinaryIO) -> bytes:
    head = b""
    while len(head) < SNIFF_BYTES:
        chunk = stream.read(SNIFF_BYTES - len(head))
        if not chunk:
            break
        head += chunk
    return head


def detect_encoding(head: bytes) -> tuple[str, str]:
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
            raise CsvFileError(decode_error_message(exc, None)) from None
        # Not UTF-8, and nothing but ASCII before the first non-UTF-8 byte: Windows-1252?
        try:
            sample = head.decode("cp1252")
        except UnicodeDecodeError as cp1252_exc:
            raise CsvFileError(decode_error_message(cp1252_exc, None)) from None
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


def decode_error_message(exc: UnicodeDecodeError, row: int | None) -> str:
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


class Prefixed(io.RawIOBase):
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


class Utf8OrWindows1252(io.RawIOBase):
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
