"""Route templates guessed from raw paths, for grouping when the framework's template is unknown.

`/users/42/orders/9f1c...` and `/users/7/orders/0b3e...` are one route to a detector counting
object enumeration, so each path segment that looks like an identifier becomes a placeholder:

| placeholder | segment                                                   | example               |
|-------------|-----------------------------------------------------------|-----------------------|
| `{int}`     | ASCII digits                                              | `42`                  |
| `{uuid}`    | 8-4-4-4-12 hex (RFC 9562 text form)                       | `0191c3a2-...`        |
| `{date}`    | ISO 8601 calendar date                                    | `2024-01-31`          |
| `{hex}`     | 8+ hex digits with a digit and a letter (hashes, ObjectId) | `5f2b6c9e0a1d`        |
| `{email}`   | an address with `@` and a dotted domain                   | `ann@example.com`     |
| `{token}`   | 16+ URL-safe characters that look random, or any 65+ long | `Zx3k9QpLm2Vb7TrY`    |

`{int}`, `{uuid}` and `{hex}` keep a short file extension (`{int}.gif`). Words, `v2`, `1.0`,
`test1` and camelCase names stay. The query and fragment are dropped, an absolute-form target
(`http://host:8080/a`, RFC 9112 section 3.2.2) is reduced to its path, and the result is at most
`MAX_ROUTE_LENGTH` characters, cut at a segment and ended by `/{...}`. Normalizing is idempotent.
"""

from __future__ import annotations

import re

MAX_ROUTE_LENGTH = 200
MAX_SEGMENT_LENGTH = 64
_TRUNCATED = "/{...}"

# One alternation, tried once per segment; the group that matched names the placeholder. `ext`
# keeps `.gif` or `.json` after an id, but not the `.0` of `1.0`.
_ID = re.compile(
    r"(?:(?P<int>[0-9]+)"
    r"|(?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<hex>(?=[^.]*[0-9])(?=[^.]*[a-fA-F])[0-9a-fA-F]{8,}))"
    r"(?P<ext>\.[A-Za-z][A-Za-z0-9]{0,7})?"
    r"|(?P<date>[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01]))"
    r"|(?P<email>[^@/\s{}]+@[^@/\s{}.]+(?:\.[^@/\s{}.]+)+)"
)
_KINDS = ("int", "uuid", "hex", "date", "email")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~+=-]{16,}")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


def _looks_random(segment: str) -> bool:
    """True for a URL-safe string whose character mix is unlike a word or slug.

    Two digits among letters (`a1b2...`, base64), or a digit with mixed case, or no digit but
    upper and lower case each a third of it (base64 letters, unlike camelCase).
    """
    digits = upper = lower = 0
    for ch in segment:
        if ch.isdigit():
            digits += 1
        elif ch.isupper():
            upper += 1
        elif ch.islower():
            lower += 1
    letters = upper + lower
    if not letters:
        return False
    if digits >= 2 or (digits and upper and lower):
        return True
    third = len(segment) // 3
    return upper >= third and lower >= third


def _segment(segment: str) -> str:
    if len(segment) > MAX_SEGMENT_LENGTH:
        return "{token}"
    if not segment or (segment.isalpha() and len(segment) < 16):
        return segment
    if segment.isdigit() and segment.isascii():
        return "{int}"
    if len(segment) < 8 and not segment[0].isdigit() and "@" not in segment:
        return segment  # `v2`, `test1`: too short for anything but a number or an address
    m = _ID.fullmatch(segment)
    if m:
        kind = next(k for k in _KINDS if m.group(k) is not None)
        return f"{{{kind}}}{m.group('ext') or ''}"
    if len(segment) >= 16 and _TOKEN_CHARS.fullmatch(segment) and _looks_random(segment):
        return "{token}"
    return segment


def normalize_route(path: str) -> str:
    """The route template guessed from `path`: identifier-like segments become placeholders."""
    end = len(path)
    for stop in ("?", "#"):
        i = path.find(stop)
        if 0 <= i < end:
            end = i
    path = path[:end]
    if "://" in path:
        m = _ABSOLUTE.match(path)
        if m:
            path = path[m.end():] or "/"
    route = "/".join([_segment(s) for s in path.split("/")])
    if len(route) <= MAX_ROUTE_LENGTH:
        return route
    cut = route.rfind("/", 0, MAX_ROUTE_LENGTH - len(_TRUNCATED) + 1)
    return route[:max(cut, 0)] + _TRUNCATED
