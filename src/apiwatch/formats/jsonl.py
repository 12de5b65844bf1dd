"""Decode JSON-lines events and validate them against the field registry.

A line is one JSON object with flat dotted keys (`"source.ip"`), nested ECS objects
(`{"source": {"ip": ...}}`, flattened), or a mix. Every field must be in
`apiwatch.events.fields` (or be a `labels.<name>` string) and have its type; `@timestamp` is
RFC 3339 with an offset; `event.action` is required and must be in the vocabulary. Missing
ECS basics are filled as `make_event` fills them (level, categorisation, a fresh `event.id`).

Bounds: a line is at most `MAX_LINE_BYTES`, objects nest at most `MAX_DEPTH` deep, a list
holds at most `MAX_ITEMS` strings. Invalid UTF-8 is an error naming the line (and the byte
offset): a record whose bytes are not text is refused, never guessed at.

Every error is a `DecodeError` with the line number and, when it is about a field, the field.
Duplicate keys in one object are not detected: the last one wins, as in orjson.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from functools import partial
from typing import IO, Any, NamedTuple

import orjson

from apiwatch.errors import DecodeError, UnknownActionError
from apiwatch.events.fields import FIELDS, LABELS_PREFIX, FieldType, field_type
from apiwatch.events.ipaddr import is_ip
from apiwatch.events.model import Event, make_event
from apiwatch.events.vocabulary import lookup

MAX_LINE_BYTES = 1 << 20
MAX_DEPTH = 8
MAX_ITEMS = 1024
_INT64 = (-(2**63), 2**63 - 1)
#: Tighter ranges where the field's meaning sets them.
_RANGES: dict[str, tuple[int, int]] = {
    "source.port": (0, 65535),
    "destination.port": (0, 65535),
    "url.port": (0, 65535),
    "http.response.status_code": (100, 599),
}
#: RFC 3339 date-time (section 5.6), which `datetime.fromisoformat` alone would not enforce.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_LABEL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
#: Fields whose only rule is their JSON type (any string, any integer): checked by `type(v) is`.
_SIMPLE_TYPES: dict[str, type] = {
    name: str for name, kind in FIELDS.items() if kind in (FieldType.KEYWORD, FieldType.TEXT)
} | {
    name: int for name, kind in FIELDS.items() if kind is FieldType.LONG and name not in _RANGES
}
#: What `make_event` fills; a line carrying all of them is taken as it is.
_BASICS = frozenset(make_event("http_request"))


def decode_line(line: bytes, lineno: int) -> Event:
    """The validated event on `line` (line number `lineno`); raises DecodeError."""
    if len(line) > MAX_LINE_BYTES:
        raise DecodeError(f"line longer than {MAX_LINE_BYTES} bytes", line=lineno)
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(_json_problem(line, exc), line=lineno) from None
    if not isinstance(document, dict):
        raise DecodeError("a line must hold one JSON object", line=lineno)
    shape = tuple(document)
    plan = _PLANS.get(shape)
    if plan is None:
        plan = _plan_for(shape)
    # A line of a shape seen before, every field of the type it must have: only the fields
    # with a rule beyond their type are looked at, one by one.
    if plan is not _NO_PLAN and tuple(map(type, document.values())) == plan.types:
        for name, check in plan.checks:
            problem = check(document[name])
            if problem is not None:
                raise DecodeError(problem, line=lineno, field=name)
        fields: dict[str, Any] = document
        complete = plan.complete
    else:
        fields = _checked_fields(document, lineno)
        complete = _BASICS.issubset(fields)
    action = fields.get("event.action")
    if action is None:
        raise DecodeError("required field is missing", line=lineno, field="event.action")
    if "@timestamp" not in fields:
        raise DecodeError("required field is missing", line=lineno, field="@timestamp")
    try:
        if complete:
            lookup(action)
            return fields
        return make_event(action, fields)
    except UnknownActionError as exc:
        raise DecodeError(str(exc), line=lineno, field="event.action") from None


def _checked_fields(document: dict[str, Any], lineno: int) -> dict[str, Any]:
    """The fields of any decoded line (nested objects flattened), each checked."""
    fields: dict[str, Any]
    if dict not in map(type, document.values()):  # no nested object (the common, flat case)
        fields = document
    else:
        fields = {}
        _flatten(document, "", 1, fields, lineno)
    simple, special = _SIMPLE_TYPES, _SPECIAL_CHECKS
    for name, value in fields.items():
        # Most fields are strings or integers with no further rule: one dict lookup each.
        if simple.get(name) is type(value):
            continue
        check = special.get(name)
        problem = _problem(name, value) if check is None else check(value)
        if problem is not None:
            raise DecodeError(problem, line=lineno, field=name)
    return fields


class _Plan(NamedTuple):
    """How to check a flat line with a given tuple of keys."""

    types: tuple[type, ...]  # the JSON type each value must have, in key order
    checks: tuple[tuple[str, Callable[[Any], str | None]], ...]  # rules beyond the type
    complete: bool  # holds every field `make_event` fills


_NO_PLAN = _Plan((), (), False)  # a shape checked field by field (unknown field, a number...)
#: Plans by shape. Events of one source come in a few shapes; the bound keeps a source that
#: varies its keys from growing the table.
_PLANS: dict[tuple[str, ...], _Plan] = {}
_MAX_PLANS = 1024


def _plan_for(shape: tuple[str, ...]) -> _Plan:
    types: list[type] = []
    checks: list[tuple[str, Callable[[Any], str | None]]] = []
    for name in shape:
        kind = field_type(name)
        simple = _SIMPLE_TYPES.get(name)
        if simple is not None:
            types.append(simple)
        elif kind is None or kind is FieldType.FLOAT or kind is FieldType.BOOLEAN:
            types = []  # unknown, or a field of two JSON types (checked the general way)
            break
        elif name.startswith(LABELS_PREFIX):
            if not _LABEL_NAME.fullmatch(name[len(LABELS_PREFIX):]):
                types = []
                break
            types.append(str)
        else:
            types.append(_PLAN_TYPES[kind])
            checks.append((name, _SPECIAL_CHECKS[name]))
    plan = _Plan(tuple(types), tuple(checks), _BASICS.issubset(shape)) if types else _NO_PLAN
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[shape] = plan
    return plan


def iter_decode(lines: Iterable[bytes]) -> Iterator[Event | DecodeError]:
    """Decode `lines` (numbered from 1); yield each event, or the DecodeError of a bad line.

    Blank lines are skipped (they still count for numbering).
    """
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            yield decode_line(line, lineno)
        except DecodeError as exc:
            yield exc


def read_lines(stream: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of `stream`, never holding more than `limit` + 1 bytes of one in memory.

    An over-long line is yielded cut to `limit` + 1 bytes (so `decode_line` refuses it) and
    the rest of it is skipped.
    """
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            yield line
            while (rest := stream.readline(limit + 1)) and not rest.endswith(b"\n"):
                pass
            continue
        yield line


def _json_problem(line: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start}"
    return f"invalid JSON: {exc.msg} at character {exc.pos}"


def _flatten(obj: dict[str, Any], prefix: str, depth: int, out: dict[str, Any], line: int) -> None:
    if depth > MAX_DEPTH:
        raise DecodeError(f"objects nest deeper than {MAX_DEPTH}", line=line, field=prefix[:-1])
    for key, value in obj.items():
        name = prefix + key
        if isinstance(value, dict):
            _flatten(value, name + ".", depth + 1, out, line)
        elif name in out:
            raise DecodeError("field given twice (dotted and nested)", line=line, field=name)
        else:
            out[name] = value


def _problem(name: str, value: Any) -> str | None:
    """What is wrong with field `name` holding `value`, or None (the general, slower path)."""
    kind = field_type(name)
    if kind is None:
        return "unknown field"
    if name.startswith(LABELS_PREFIX) and not _LABEL_NAME.fullmatch(name[len(LABELS_PREFIX):]):
        return "label names are letters, digits, _ and -"
    return _KIND_CHECKS[kind](value)


def _string_problem(value: Any) -> str | None:
    return None if isinstance(value, str) else "expected a string"


def _strings_problem(value: Any) -> str | None:
    if not isinstance(value, list):
        return "expected a list of strings"
    if len(value) > MAX_ITEMS:
        return f"more than {MAX_ITEMS} items"
    try:
        "".join(value)  # one C call that refuses anything but strings
    except TypeError:
        return "expected a list of strings"
    return None


def _long_problem(value: Any, low: int = _INT64[0], high: int = _INT64[1]) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return "expected an integer"
    return None if low <= value <= high else f"integer out of range {low}..{high}"


def _float_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "expected a number"
    return None if math.isfinite(value) else "expected a finite number"


def _boolean_problem(value: Any) -> str | None:
    return None if isinstance(value, bool) else "expected true or false"


def _date_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        return "expected an RFC 3339 timestamp with an offset"
    try:
        datetime.fromisoformat(value)
    except ValueError:
        # fromisoformat takes at most 6 fraction digits and upper-case T and Z only;
        # range-check the value without the rest.
        trimmed = re.sub(r"(\.\d{6})\d+", r"\1", value)
        try:
            datetime.fromisoformat(trimmed.replace("z", "Z").replace("t", "T"))
        except ValueError:
            return "expected an RFC 3339 timestamp with an offset (date out of range)"
    return None


def _ip_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "expected an IP address string"
    return None if is_ip(value) else "expected an IPv4 or IPv6 address"


_KIND_CHECKS: dict[FieldType, Callable[[Any], str | None]] = {
    FieldType.KEYWORD: _string_problem,
    FieldType.TEXT: _string_problem,
    FieldType.KEYWORDS: _strings_problem,
    FieldType.LONG: _long_problem,
    FieldType.FLOAT: _float_problem,
    FieldType.BOOLEAN: _boolean_problem,
    FieldType.DATE: _date_problem,
    FieldType.IP: _ip_problem,
}
#: The JSON type of a value of each kind that has a rule beyond its type.
_PLAN_TYPES: dict[FieldType, type] = {
    FieldType.LONG: int, FieldType.DATE: str, FieldType.IP: str, FieldType.KEYWORDS: list,
}
#: Known fields with a rule beyond their JSON type, by name (ranges, dates, addresses, lists).
_SPECIAL_CHECKS: dict[str, Callable[[Any], str | None]] = {
    name: partial(_long_problem, low=low, high=high) for name, (low, high) in _RANGES.items()
} | {
    name: _KIND_CHECKS[kind]
    for name, kind in FIELDS.items()
    if name not in _SIMPLE_TYPES and name not in _RANGES
}
