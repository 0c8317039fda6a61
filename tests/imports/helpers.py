"""Helpers to build CSV files for the import tests (generated, never committed)."""

from __future__ import annotations

import io
import random

VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
HEADER = "vin,brand,license_plate,nickname,tags,odometer_km"


def make_vin(index: int, seed: str = "WHM") -> str:
    """A distinct, syntactically valid VIN per index (check digit not guaranteed)."""
    rnd = random.Random(f"{seed}-{index}")
    body = "".join(rnd.choice(VIN_ALPHABET) for _ in range(11 - len(seed)))
    return f"{seed}{body}{index:06d}"


def fleet_csv(rows: int, *, start: int = 0, seed: str = "WHM", brand: str = "bmw") -> bytes:
    lines = [HEADER]
    lines += [
        f"{make_vin(i, seed)},{brand},B-{i % 9999},Van {i},depot=north,{i * 7}"
        for i in range(start, start + rows)
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


class GeneratedCsv(io.RawIOBase):
    """A binary stream producing ``rows`` fleet rows lazily (flat memory, no big file)."""

    def __init__(self, rows: int, seed: str = "WHM") -> None:
        self._rows = rows
        self._next = 0
        self._seed = seed
        self._buffer = (HEADER + "\r\n").encode()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        while len(self._buffer) < len(buffer) and self._next < self._rows:
            chunk = [
                f"{make_vin(i, self._seed)},Mercedes,B-{i % 9999},Van {i},"
                f'"depot=north;cost={i % 50}",{i}\r\n'
                for i in range(self._next, min(self._next + 500, self._rows))
            ]
            self._next += len(chunk)
            self._buffer += "".join(chunk).encode()
        size = min(len(buffer), len(self._buffer))
        buffer[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size
