"""Private text helpers shared by the line encoders; not API.

The sanitizer neutralizes control characters before an event is encoded, but an encoder must
keep its record whole on its own (defence in depth): these helpers make any string safe to put
inside one record of a line-oriented format, whatever it holds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

#: Characters that end a line for some reader (C0 except TAB, DEL, C1, U+2028/2029 — all that
#: Python's str.splitlines() breaks on) or that drive terminals (ESC, BEL...).
UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


_JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE
#: DEL, C1 (U+0080-U+009F) and U+2028/U+2029 as they appear in UTF-8 output. Each sequence
#: can only be that character in valid UTF-8, and in JSON output it can only sit in a string.
_JSON_LINE_BREAKERS = re.compile(rb"\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")
#: Nesting kept when repairing a value that orjson refused; events are flat, so this is ample.
_MAX_DEPTH = 16


def json_line(value: Any) -> bytes:
    """`value` as one line of JSON ending in b"\\n", whatever strings it holds.

    JSON escapes every C0 control itself; DEL, the C1 controls and U+2028/U+2029 are valid
    unescaped JSON but end a line for some readers (Python's `str.splitlines`, JavaScript),
    so they are escaped as `\\uXXXX` too. Lone surrogates, bytes, non-str keys and integers
    beyond 64 bits, which orjson refuses, are repaired rather than raised.
    """
    try:
        out = orjson.dumps(value, option=_JSON_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        out = orjson.dumps(_repair(value, 0), option=_JSON_OPTIONS)
    # Cheap tests first (isascii is vectorized): the regex only runs on a candidate byte.
    if not out.isascii() or out.find(b"\x7f") >= 0:
        out = _JSON_LINE_BREAKERS.sub(_json_escape, out)
    return out


def _json_escape(match: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(match.group().decode("utf-8"))


def _repair(value: Any, depth: int) -> Any:
    """A JSON-serializable copy of `value`: valid Unicode strings, str keys, bounded depth."""
    if isinstance(value, str):
        return valid_unicode(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        # orjson writes 64-bit integers only; a bigger one is kept as its decimal text.
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= _MAX_DEPTH:
        return "[too deep]"
    if isinstance(value, Mapping):
        return {_repair(str(k), depth): _repair(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_repair(item, depth + 1) for item in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return valid_unicode(str(value))


def escape_unsafe(text: str) -> str:
    r"""Replace each unsafe character by the six characters `\uXXXX`.

    A format escapes its own backslashes first, so a literal `\u000a` in the input comes out
    as `\\u000a` and stays distinguishable from an escaped control character.
    """
    return UNSAFE.sub(_hex_escape, text)


def _hex_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def utf8(text: str) -> bytes:
    """Encode as UTF-8; a lone surrogate (from surrogateescape or bad input) becomes U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return valid_unicode(text).encode("utf-8")


def valid_unicode(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD; well-formed pairs are joined."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def as_text(value: Any) -> str:
    """A scalar or list field value as one string (lists joined by commas)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(as_text(item) for item in value)
    return str(value)


def first(event: Mapping[str, Any], *names: str) -> Any:
    """The value of the first of `names` present (and not None) in `event`, else None."""
    for name in names:
        value = event.get(name)
        if value is not None:
            return value
    return None
