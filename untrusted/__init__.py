"""Reading what arrives from outside (uploads, forms, webhooks, HM answers, MQTT messages).

Two rules, each defined here only:

- **Text the database can store.** PostgreSQL refuses the NUL character (U+0000) in text and in
  ``jsonb``, and a lone UTF-16 surrogate (U+D800-U+DFFF, which JSON's ``\\ud800`` escapes can
  produce) cannot even be encoded for it. Such a value would pass validation and then fail the
  write halfway through a batch; ``unstorable_character`` finds it first.
- **JSON from strangers.** ``parse_json`` never raises anything but ``UntrustedJsonError`` (a
  ``ValueError`` whose message is a sentence): it refuses documents nested deeper than
  ``MAX_JSON_DEPTH`` (Python's decoder would raise ``RecursionError`` on thousands of levels),
  ``NaN``/``Infinity`` and numbers too large for a float (not JSON, refused by ``jsonb``) and
  the characters above. Depth is checked on the text, before decoding.

Pure Python, no Django, so the CSV reader and its property tests use it without settings.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_JSON_DEPTH = 64  # HM documents nest about 8 levels; nothing we read needs more

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


class UntrustedJsonError(ValueError):
    """The document cannot be used; ``str(exc)`` says why in a sentence."""


def unstorable_character(text: str) -> str | None:
    """Describe the first character of ``text`` the database cannot store, or None."""
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    if match.group() == "\x00":
        return "a NUL character (an invisible control character, code 0)"
    return f"an invalid character (a lone UTF-16 surrogate, U+{ord(match.group()):04X})"


def storable(text: str) -> str:
    """``text`` with every character the database cannot store replaced by U+FFFD (for labels
    and messages that quote what a user sent)."""
    return _UNSTORABLE.sub(REPLACEMENT, text)


def parse_json(data: str | bytes | bytearray, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode JSON that anyone may have written; raise ``UntrustedJsonError`` if unusable."""
    if isinstance(data, bytes | bytearray):
        try:  # as json.loads decodes bytes (UTF-8, -16 or -32)
            data = bytes(data).decode(json.detect_encoding(data), "surrogatepass")
        except UnicodeDecodeError:
            raise UntrustedJsonError("The JSON is not valid UTF-8 text.") from None
    _check_depth(data, max_depth)
    try:
        document = json.loads(data, parse_float=_finite_float, parse_constant=_refuse_constant)
    except UntrustedJsonError:
        raise
    except RecursionError:  # not expected after _check_depth; never a 500 all the same
        raise UntrustedJsonError(_too_deep(max_depth)) from None
    except json.JSONDecodeError as exc:
        raise UntrustedJsonError(
            f"The JSON is not valid: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except ValueError:  # e.g. an integer with more than 4,300 digits
        raise UntrustedJsonError("The JSON is not valid.") from None
    if _may_hold_unstorable_text(data):
        _check_text_in(document)
    return document


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _check_depth(text: str, max_depth: int) -> None:
    """Refuse nesting deeper than ``max_depth`` before decoding, so the decoder never recurses
    that deep (exact for valid JSON: the brackets outside strings are its structure)."""
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > max_depth:
                raise UntrustedJsonError(_too_deep(max_depth))
        else:
            depth -= 1


def _too_deep(max_depth: int) -> str:
    return f"The JSON is nested more than {max_depth} levels deep."


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UntrustedJsonError(f"The JSON contains a number too large to store ({text[:20]}…).")
    return value


def _refuse_constant(name: str) -> float:
    raise UntrustedJsonError(f"The JSON contains {name}, which JSON does not allow.")


def _may_hold_unstorable_text(text: str) -> bool:
    """Cheap test first: a NUL or a lone surrogate is written as a \\u escape (raw control
    characters are not valid JSON), or arrives raw and fails UTF-8 encoding."""
    if "\\u" in text and _UNSTORABLE_ESCAPE.search(text):
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_text_in(document: Any) -> None:
    """Walk the decoded document without recursion and check every key and string."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            for key in value:
                _check_text(key)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            _check_text(value)


def _check_text(text: str) -> None:
    problem = unstorable_character(text)
    if problem:
        raise UntrustedJsonError(f"The JSON contains {problem}, which cannot be stored.")
