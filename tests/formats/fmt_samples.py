"""Sample events and independent parsers of the encoders' output, shared by the format tests."""

from __future__ import annotations

import json
import re
from typing import Any

from apiwatch.events import FIELDS, FieldType

#: Fields `make_event` sets from the vocabulary; samples leave them alone.
VOCABULARY_FIELDS = frozenset(
    {"event.action", "event.kind", "event.category", "event.type", "event.outcome",
     "event.severity", "log.level", "ecs.version", "@timestamp", "message", "event.id"}
)
_REALISTIC: dict[str, Any] = {
    "source.port": 51234,
    "destination.port": 443,
    "url.port": 443,
    "http.response.status_code": 403,
    "http.request.method": "POST",
    "url.original": "https://api.example.com/v1/orders/7?page=2",
    "url.scheme": "https",
    "url.domain": "api.example.com",
    "url.path": "/v1/orders/7",
    "url.query": "page=2",
    "user.email": "alice@example.com",
    "host.name": "api-1",
    "host.hostname": "api-1",
    "http.version": "1.1",
    "source.geo.country_iso_code": "FR",
    "host.ip": ["203.0.113.9", "2001:db8::9"],
}
_BY_TYPE: dict[FieldType, Any] = {
    FieldType.KEYWORD: "sample",
    FieldType.TEXT: "sample text",
    FieldType.DATE: "2025-01-02T03:04:05.678Z",
    FieldType.LONG: 7,
    FieldType.FLOAT: 1.5,
    FieldType.BOOLEAN: True,
    FieldType.KEYWORDS: ["one", "two"],
    FieldType.IP: "203.0.113.7",
}

#: Every string field of the registry (a payload can be placed in each), plus a label.
STRING_FIELDS = (
    *(
        name
        for name, kind in FIELDS.items()
        if kind in (FieldType.KEYWORD, FieldType.TEXT) and name not in ("event.action", "log.level")
    ),
    "labels.x",
)


def full_fields() -> dict[str, Any]:
    """A realistic value for every registry field that the vocabulary does not set."""
    return {
        name: _REALISTIC.get(name, _BY_TYPE[kind])
        for name, kind in FIELDS.items()
        if name not in VOCABULARY_FIELDS
    } | {"labels.team": "payments"}


def expected_text(value: str) -> str:
    """What a valid-Unicode encoder keeps of `value`: lone surrogates become U+FFFD."""
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


# --- CEF ---------------------------------------------------------------------------------

_CEF_PAIR = re.compile(r"([A-Za-z0-9]+)=((?:\\.|[^\\=])*?)(?= [A-Za-z0-9]+=|$)", re.DOTALL)


def _unescape(text: str, singles: dict[str, str]) -> str:
    r"""Undo backslash escapes: `singles` maps the escaped char; `\uXXXX` is a code point."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in singles:
            out.append(singles[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9a-f]{4}", text[i + 2 : i + 6]):
            out.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
        else:
            out.append("\\" + nxt)
            i += 2
    return "".join(out)


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """Split a CEF line on unescaped `|` (8 parts) and parse its extension into key -> value."""
    assert line.endswith("\n")
    assert line.count("\n") == 1
    parts: list[str] = []
    current: list[str] = []
    i, body = 0, line[:-1]
    while i < len(body) and len(parts) < 7:
        if body[i] == "\\" and i + 1 < len(body):
            current.append(body[i : i + 2])
            i += 2
        elif body[i] == "|":
            parts.append("".join(current))
            current = []
            i += 1
        else:
            current.append(body[i])
            i += 1
    parts.append(body[i:])
    assert len(parts) == 8, parts
    header = [_unescape(p, {"\\": "\\", "|": "|"}) for p in parts[:7]]
    extension: dict[str, str] = {}
    pos = 0
    for match in _CEF_PAIR.finditer(parts[7]):
        assert match.start() in (pos, pos + 1), f"unparsed text in {parts[7]!r}"
        extension[match.group(1)] = _unescape(
            match.group(2), {"\\": "\\", "=": "=", "n": "\n", "r": "\r"}
        )
        pos = match.end()
    assert pos == len(parts[7]), f"unparsed tail {parts[7][pos:]!r}"
    return header, extension


# --- RFC 5424 ----------------------------------------------------------------------------

_SYSLOG = re.compile(
    r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[(?:\\.|[^\\\]])*\]) \ufeff(.*)", re.DOTALL
)
_HEADER_FIELD = re.compile(r"[\x21-\x7e]+")
_SD_PARAM = re.compile(r' ([^= \]"]{1,32})="((?:\\.|[^"\\])*)"', re.DOTALL)


def parse_syslog(message: bytes) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """Header fields, SD-PARAMs (unescaped) and the JSON MSG of one RFC 5424 message."""
    text = message.decode("utf-8")
    match = _SYSLOG.fullmatch(text)
    assert match is not None, text
    header = list(match.groups()[:6])
    for field in header[1:]:
        assert _HEADER_FIELD.fullmatch(field), field
    params: dict[str, str] = {}
    sd = match.group(7)
    if sd != "-":
        assert sd.startswith("[apiwatch@32473")
        body = sd[len("[apiwatch@32473") : -1]
        pos = 0
        for param in _SD_PARAM.finditer(body):
            assert param.start() == pos
            params[param.group(1)] = _unescape(param.group(2), {'"': '"', "\\": "\\", "]": "]"})
            pos = param.end()
        assert pos == len(body), body[pos:]
    return header, params, json.loads(match.group(8))


def unframe(stream: bytes) -> list[bytes]:
    """Split RFC 6587 octet-counted frames."""
    frames: list[bytes] = []
    while stream:
        length, _, rest = stream.partition(b" ")
        size = int(length)
        frames.append(rest[:size])
        stream = rest[size:]
    return frames
