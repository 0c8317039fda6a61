"""VIN and brand normalisation shared by the add-vehicle form, the CSV import and the admin.

Pure Python (no Django imports) so the CSV parser and its property tests run without settings.
Errors are ``InvalidValue`` (a ``ValueError``) whose message is a plain sentence a fleet manager
understands; forms turn it into a ``ValidationError`` with ``str(exc)``.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

from clearance.hm.types import BRAND_LABELS, FLEET_BRANDS

__all__ = [
    "BRAND_ALIASES",
    "FLEET_BRANDS",
    "InvalidValue",
    "brand_label",
    "normalize_vin",
    "parse_brand",
    "valid_brands_text",
    "vin_check_digit",
    "vin_check_digit_ok",
]

VIN_LENGTH = 17
_VIN_ALLOWED = re.compile(r"[A-HJ-NPR-Z0-9]{17}")

# ISO 3779 / FMVSS 115 check digit (position 9): transliteration and weights.
_TRANSLITERATION = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


class InvalidValue(ValueError):
    """A value that cannot be used; ``str(exc)`` is the message to show."""


def vin_check_digit(vin: str) -> str:
    """The expected 9th character of a syntactically valid VIN ("0"-"9" or "X")."""
    total = sum(_TRANSLITERATION[char] * weight for char, weight in zip(vin, _WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def vin_check_digit_ok(vin: str) -> bool:
    """True when the 9th character matches the ISO 3779 check digit.

    Mandatory in North America only; many European VINs do not use it, so callers treat a
    mismatch as a warning, never as an error.
    """
    if not _VIN_ALLOWED.fullmatch(vin):
        return False
    return vin[8] == vin_check_digit(vin)


def normalize_vin(value: object) -> tuple[str, list[str]]:
    """Return ``(vin, warnings)``: the VIN stripped and upper-cased, or raise ``InvalidValue``."""
    vin = ("" if value is None else str(value)).strip().upper()
    if not vin:
        raise InvalidValue("The VIN is missing.")
    shown = _shorten(vin)
    if len(vin) != VIN_LENGTH:
        raise InvalidValue(f"The VIN “{shown}” has {len(vin)} characters; a VIN has exactly 17.")
    if not _VIN_ALLOWED.fullmatch(vin):
        forbidden = sorted({char for char in vin if char in "IOQ"})
        if forbidden:
            letters = ", ".join(forbidden)
            raise InvalidValue(
                f"The VIN “{shown}” contains the letter {letters}; VINs never use I, O or Q "
                "(they are easily confused with 1 and 0)."
            )
        bad = sorted({char for char in vin if not ("A" <= char <= "Z" or "0" <= char <= "9")})
        shown_bad = " ".join(repr(char) for char in bad[:5])
        raise InvalidValue(
            f"The VIN “{shown}” contains {shown_bad}; only letters and digits are allowed."
        )
    warnings = []
    if not vin_check_digit_ok(vin):
        warnings.append(
            f"The VIN’s check digit (9th character “{vin[8]}”, expected “{vin_check_digit(vin)}”) "
            "does not match. Many European VINs don’t use one, so this is only a warning: "
            "please double-check the VIN."
        )
    return vin, warnings


def _compact(value: str) -> str:
    """Case/accent/punctuation-free key: "Citroën" -> "citroen", "Alfa Romeo" -> "alfaromeo"."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    return "".join(char for char in decomposed if char.isascii() and char.isalnum())


# Extra spellings people use in spreadsheets (keys are compacted); slugs match themselves.
BRAND_ALIASES: dict[str, str] = {
    "mercedes": "mercedes-benz",
    "mercedesbenz": "mercedes-benz",
    "mb": "mercedes-benz",
    "benz": "mercedes-benz",
    "daimler": "mercedes-benz",
    "vw": "volkswagen",
    "volkswagen": "volkswagen",
    "alfa": "alfaromeo",
    "volvo": "volvo-cars",
    "volvocar": "volvo-cars",
    "dsautomobiles": "ds",
    "citroen": "citroen",
    "skoda": "skoda",
    "seatcupra": "cupra",
    "bmwgroup": "bmw",
    "minicooper": "mini",
    "teslamotors": "tesla",
    "kiamotors": "kia",
}

_BRAND_LOOKUP: dict[str, str] = {
    **{_compact(slug): slug for slug in FLEET_BRANDS},
    **{_compact(label): slug for slug, label in BRAND_LABELS.items() if slug in FLEET_BRANDS},
    **{key: slug for key, slug in BRAND_ALIASES.items() if slug in FLEET_BRANDS},
}


def brand_label(slug: str) -> str:
    """The name people know for HM's slug: "volvo-cars" -> "Volvo Cars"."""
    return BRAND_LABELS.get(slug, slug)


def valid_brands_text() -> str:
    """The supported brands by the names people know, alphabetically ("Alfa Romeo, Audi, …")."""
    return ", ".join(sorted((brand_label(slug) for slug in FLEET_BRANDS), key=_compact))


def closest_brand(text: str) -> str | None:
    """The slug of the brand ``text`` is most likely a misspelling of ("Volkswagon"), or None."""
    key = _compact(text)
    if len(key) < 3:
        return None  # "x", "ab": every short string is "close" to some brand
    matches = difflib.get_close_matches(key, _BRAND_LOOKUP, n=1, cutoff=0.75)
    if matches:
        return _BRAND_LOOKUP[matches[0]]
    # A brand followed by a model or a company suffix: "Opel Astra", "Skoda Auto".
    prefixes = [known for known in _BRAND_LOOKUP if len(known) >= 3 and key.startswith(known)]
    return _BRAND_LOOKUP[max(prefixes, key=len)] if prefixes else None


def parse_brand(value: object) -> str:
    """Map a brand as people write it to HM's fleet brand slug, or raise ``InvalidValue``."""
    text = ("" if value is None else str(value)).strip()
    if not text:
        raise InvalidValue(f"The brand is missing. Valid brands: {valid_brands_text()}.")
    slug = _BRAND_LOOKUP.get(_compact(text))
    if slug is None:
        suggestion = closest_brand(text)
        hint = f" Did you mean {brand_label(suggestion)}?" if suggestion else ""
        raise InvalidValue(
            f"“{_shorten(text)}” is not a brand High Mobility supports.{hint} "
            f"Valid brands: {valid_brands_text()}."
        )
    return slug


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
