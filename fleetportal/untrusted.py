"""Reading what arrives from outside (uploads, forms, webhooks, HM answers, MQTT messages).

Two rules, each defined here only:

- **Text the database can store.** PostgreSQL refuses the NUL character (U+0000) in text and in
  ``jsonb``, and a lone UTF-16 surrogate (U+D800-U+DFFF, which JSON's ``\\ud800`` escapes can
  produce) cannot even be encoded for it. Such a value would pass validation and then fail the
  write halfway through a batch; ``unstorable_character`` finds it first.
- **JSON from strangers.** ``parse_json`` never raises anything but ``UntrustedJsonError`` (a
  ``ValueError`` whose message is a sentence): it refuses documents nested deeper than
  ``MAX_JSON_DEPTH`` (Python's decoder would raise ``RecursionError`` on thousands of levels),
  ``NaN``/``Infinity`` (not JSON, refused by ``jsonb``) and the characters above.

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
    try:
        document = json.loads(data)
    except RecursionError:
        raise UntrustedJsonError(f"The JSON is nested more than {max_depth} levels deep.") from None
    except UnicodeDecodeError:
        raise UntrustedJsonError("The JSON is not valid UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise UntrustedJsonError(
            f"The JSON is not valid: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except (TypeError, ValueError) as exc:  # e.g. an integer with more than 4,300 digits
        raise UntrustedJsonError(f"The JSON is not valid: {exc}.") from None
    _check(document, max_depth)
    return document


def _check(document: Any, max_depth: int) -> None:
    """Walk the document without recursion: depth, numbers and text of keys and values."""
    pending: list[tuple[Any, int]] = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            if depth >= max_depth:
                raise UntrustedJsonError(f"The JSON is nested more than {max_depth} levels deep.")
            for key, item in value.items():
                _check_text(key)
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            if depth >= max_depth:
                raise UntrustedJsonError(f"The JSON is nested more than {max_depth} levels deep.")
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_text(value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise UntrustedJsonError(
                "The JSON contains NaN or an infinite number, which JSON does not allow."
            )


def _check_text(text: str) -> None:
    problem = unstorable_character(text)
    if problem:
        raise UntrustedJsonError(f"The JSON contains {problem}, which cannot be stored.")
