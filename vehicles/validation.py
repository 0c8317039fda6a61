"""One rule set per vehicle field (VIN, brand, licence plate, nickname, tags, odometer), used by
the add and edit forms, the CSV import and the API alike.

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
    "MAX_LICENSE_PLATE",
    "MAX_NICKNAME",
    "MAX_ODOMETER_KM",
    "MAX_TAGS",
    "MAX_TAG_KEY",
    "MAX_TAG_VALUE",
    "InvalidValue",
    "brand_label",
    "check_digit_applies",
    "clean_text",
    "format_tags",
    "normalize_vin",
    "parse_brand",
    "parse_odometer",
    "parse_tags",
    "valid_brands_text",
    "vin_check_digit",
    "vin_check_digit_ok",
]

VIN_LENGTH = 17
MAX_LICENSE_PLATE = 20
MAX_NICKNAME = 100
MAX_TAG_KEY = 64
MAX_TAG_VALUE = 255
MAX_TAGS = 20
MAX_ODOMETER_KM = 9_999_999
# Where the check digit is mandatory: VINs made for North America (WMI starting 1-5).
CHECK_DIGIT_REGIONS = "12345"
# HM's sandbox and simulator VINs (1HM...) and its spec examples: made up, no check digit.
SANDBOX_VIN_PREFIXES = ("1HM", "EXVETESTVIN")
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


def check_digit_applies(vin: str) -> bool:
    """Whether a wrong check digit is worth a warning: only where it is mandatory (North
    America, WMI 1-5), never for HM's sandbox VINs. Most European VINs do not use one."""
    return vin[:1] in CHECK_DIGIT_REGIONS and not vin.startswith(SANDBOX_VIN_PREFIXES)


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
    if check_digit_applies(vin) and not vin_check_digit_ok(vin):
        warnings.append(
            f"The VIN’s check digit (9th character “{vin[8]}”, expected “{vin_check_digit(vin)}”) "
            "does not match. VINs made for North America always carry one: please double-check "
            "the VIN."
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


def clean_text(value: object, *, limit: int, what: str) -> str:
    """A licence plate or nickname: surrounding spaces removed, at most ``limit`` characters."""
    text = ("" if value is None else str(value)).strip()
    if len(text) > limit:
        raise InvalidValue(
            f"The {what} “{_shorten(text, 30)}” is {len(text)} characters long; at most {limit} "
            "are allowed."
        )
    return text


# Tags: "vans, depot=berlin" or "vans;depot=berlin". A tag is a bare word ("vans") or a
# key=value pair; commas and semicolons separate tags, so neither is part of a key or value.
TAG_SEPARATORS = re.compile(r"[,;]")
TAG_RULE = (
    "write tags as words or key=value pairs separated by commas or semicolons, for example "
    "“vans, depot=berlin”"
)


def parse_tags(value: object) -> dict[str, str]:
    """ "vans, depot=berlin" -> {"vans": "", "depot": "berlin"} (Vehicle.tags is a JSON object);
    raise ``InvalidValue`` naming the faulty tag."""
    tags: dict[str, str] = {}
    for part in TAG_SEPARATORS.split("" if value is None else str(value)):
        part = part.strip()
        if not part:
            continue
        key, _, tag_value = part.partition("=")
        key, tag_value = key.strip(), tag_value.strip()
        if not key:
            raise InvalidValue(f"“{_shorten(part, 40)}” has no name before “=”; {TAG_RULE}.")
        if len(key) > MAX_TAG_KEY or len(tag_value) > MAX_TAG_VALUE:
            raise InvalidValue(
                f"The tag “{_shorten(key, 30)}” is too long (names up to {MAX_TAG_KEY} "
                f"characters, values up to {MAX_TAG_VALUE})."
            )
        if key in tags:
            raise InvalidValue(f"The tag “{_shorten(key, 30)}” appears twice.")
        tags[key] = tag_value
    if len(tags) > MAX_TAGS:
        raise InvalidValue(f"{len(tags)} tags given; at most {MAX_TAGS} per vehicle are allowed.")
    return tags


def format_tags(tags: dict[str, str] | list | None, separator: str = ", ") -> str:
    """The tags as people write them (``parse_tags`` reads this back unchanged): "vans,
    depot=berlin" on pages, "vans;depot=berlin" (``separator=";"``) in CSV files."""
    if not tags:
        return ""
    if isinstance(tags, list):  # an old shape: a list of words
        return separator.join(str(tag) for tag in tags)
    return separator.join(f"{key}={value}" if value else str(key) for key, value in tags.items())


_WHOLE_NUMBER = re.compile(r"\d{1,3}(?:[ _\u00a0\u202f.,]\d{3})+|\d+")


def parse_odometer(value: object) -> int | None:
    """Kilometres as people write them ("87351", "87 351", "87,351 km"); None when empty."""
    text = ("" if value is None else str(value)).strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        digits = text  # the usual cell, "87351": what the rules below keep of it
    else:
        if text.lower().endswith("km"):
            text = text[:-2].strip()
        if not _WHOLE_NUMBER.fullmatch(text):
            raise InvalidValue(
                f"“{_shorten(str(value), 30)}” is not a whole number of kilometres (0 or more)."
            )
        digits = re.sub(r"\D", "", text)
    # Longer than any real reading; also keeps int() below Python's limit on digit strings.
    if len(digits.lstrip("0")) > len(str(MAX_ODOMETER_KM)):
        raise InvalidValue(
            f"“{_shorten(str(value), 30)}” is not a plausible odometer reading (at most "
            f"{MAX_ODOMETER_KM:,} km)."
        )
    number = int(digits)
    if number > MAX_ODOMETER_KM:
        raise InvalidValue(
            f"{number:,} km is not a plausible odometer reading (at most {MAX_ODOMETER_KM:,} km)."
        )
    return number


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
