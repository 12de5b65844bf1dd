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

`decode_lines` gives the same verdicts for a batch at a little over half the cost per line
(bench/decode_bench.py): lines of one shape are checked a field at a time, in C-level calls.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from datetime import datetime
from functools import partial
from itertools import chain, groupby, repeat
from socket import AF_INET, inet_pton
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


def decode_lines(
    lines: Sequence[bytes], numbers: Sequence[int] | None = None
) -> list[Event | DecodeError]:
    """For each of `lines` (numbered `numbers`, by default from 1), what `decode_line` gives:
    the event, or in its place the DecodeError it raises.

    Lines of one shape are checked together, each checked field over all of them at once; the
    lines that fail, and those the column checks do not cover, are left to `decode_line`.
    Raises ValueError when `numbers` does not number every line.
    """
    return decode_batch(lines, numbers)[0]


def decode_batch(
    lines: Sequence[bytes], numbers: Sequence[int] | None = None
) -> tuple[list[Event | DecodeError], tuple[str, ...] | None]:
    """`decode_lines`, and the keys every event has, in order, when they all have the same
    ones as decoded (none filled in, no line bad); else None."""
    if numbers is None:
        numbers = range(1, len(lines) + 1)
    elif len(numbers) != len(lines):
        raise ValueError(f"{len(numbers)} line numbers for {len(lines)} lines")
    results: list[Any] = _objects(lines)
    slow: list[int] = []  # the rows decode_line decides
    shapes = _by_shape(results)
    for shape, rows in shapes.items():
        plan = _PLANS.get(shape) or _plan_for(shape)
        if not plan.complete:  # no plan, or make_event has fields to fill
            slow += rows
            continue
        group = results if len(rows) == len(results) else list(map(results.__getitem__, rows))
        slow += map(rows.__getitem__, _suspects(group, plan))
    for row in slow:
        results[row] = _decoded(lines[row], numbers[row])
    return results, next(iter(shapes)) if len(shapes) == 1 and not slow else None


def _decoded(line: bytes, lineno: int) -> Event | DecodeError:
    try:
        return decode_line(line, lineno)
    except DecodeError as exc:
        return exc


def _objects(lines: Sequence[bytes]) -> list[dict[str, Any]]:
    """The JSON object on each line; an empty one where there is none (the line is too long,
    not JSON, or not an object): no plan covers an empty object, decode_line will say why."""
    values = None
    if max(map(len, lines), default=0) <= MAX_LINE_BYTES:
        # One C call for the batch; when some line is not JSON, the lines are read one by one.
        with suppress(orjson.JSONDecodeError):
            values = list(map(orjson.loads, lines))
    if values is None:
        values = list(map(_value, lines))
    if set(map(type, values)) <= {dict}:
        return values
    return [value if type(value) is dict else {} for value in values]


def _value(line: bytes) -> Any:
    if len(line) > MAX_LINE_BYTES:
        return None
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def _by_shape(documents: list[dict[str, Any]]) -> dict[tuple[str, ...], list[int]]:
    """The positions of `documents` by tuple of keys."""
    sizes = list(map(len, documents))
    groups: dict[tuple[str, ...], list[int]] = {}
    # Positions sorted by size (in C); a run of one size is one shape when its keys, end to
    # end, repeat the first object's. No tuple of keys per line then, to build, hash and leave
    # to the garbage collector.
    for _, run in groupby(sorted(range(len(sizes)), key=sizes.__getitem__), sizes.__getitem__):
        rows = list(run)
        members = list(map(documents.__getitem__, rows))
        shape = tuple(members[0])
        if list(chain.from_iterable(members)) == list(shape) * len(rows):
            groups[shape] = rows
            continue
        for row, member in zip(rows, members, strict=True):
            groups.setdefault(tuple(member), []).append(row)
    return groups


#: A failing part of a group this short is left whole to `decode_line`.
_FEW = 8


def _suspects(documents: list[dict[str, Any]], plan: _Plan) -> range:
    """The positions in `documents` (lines of one shape, checked by `plan`) of the lines that
    `decode_line` must decide; empty when every line passes as it is.

    A failing group is halved while one half passes, so that one bad line does not send its
    batch down the slow path; bad lines in both halves leave the part that holds them.
    """
    low, high = 0, len(documents)
    if _passes(documents, plan):
        return range(0)
    while high - low >= 2 * _FEW:
        middle = (low + high) // 2
        if _passes(documents[low:middle], plan):
            low = middle
        elif _passes(documents[middle:high], plan):
            high = middle
        else:
            break
    return range(low, high)


def _passes(documents: list[dict[str, Any]], plan: _Plan) -> bool:
    """Whether `decode_line` returns each of `documents` (of one complete shape) as it is: True
    is exact, False may be wrong (as the column checks)."""
    width = len(plan.types)
    # Every value of every line in one list: field i of the lines is the slice [i::width].
    values = list(chain.from_iterable(map(dict.values, documents)))
    return list(map(type, values)) == list(plan.types) * len(documents) and all(
        check(values[position::width]) for position, check in plan.columns
    )


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
    #: For `decode_lines`: the same rules (and the action's) by key position, each checking
    #: the values of many lines.
    columns: tuple[tuple[int, Callable[[list[Any]], bool]], ...]


_NO_PLAN = _Plan((), (), False, ())  # a shape checked field by field (unknown field, a number...)
#: Plans by shape. Events of one source come in a few shapes; the bound keeps a source that
#: varies its keys from growing the table.
_PLANS: dict[tuple[str, ...], _Plan] = {}
_MAX_PLANS = 1024


def _plan_for(shape: tuple[str, ...]) -> _Plan:
    types: list[type] = []
    checks: list[tuple[str, Callable[[Any], str | None]]] = []
    columns: list[tuple[int, Callable[[list[Any]], bool]]] = []
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
            columns.append((len(types), _COLUMN_CHECKS[name]))
            types.append(_PLAN_TYPES[kind])
            checks.append((name, _SPECIAL_CHECKS[name]))
    complete = _BASICS.issubset(shape)
    if complete:
        columns.append((shape.index("event.action"), _actions_pass))
    plan = _Plan(tuple(types), tuple(checks), complete, tuple(columns)) if types else _NO_PLAN
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
        yield _decoded(line, lineno)


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


# Column checks: whether every value of a field, over lines whose types are right, passes the
# field's rule. True must be exact; False may be wrong (decode_line then decides each line).

#: Every ASCII digit to 0: `_RFC3339` takes a text exactly when it takes it so translated (a
#: digit there is only ever `\d`), and a batch's timestamps translate to one or two forms.
_ZEROS = str.maketrans("0123456789", "0" * 10)


def _dates_pass(column: list[str]) -> bool:
    forms = "\n".join(column).translate(_ZEROS).split("\n")
    # More forms than values: a value holds a line break.
    if len(forms) != len(column) or not all(map(_RFC3339.fullmatch, set(forms))):
        return False
    try:
        list(map(datetime.fromisoformat, column))  # what is left of _date_problem once it matched
    except ValueError:
        return False
    return True


def _ips_pass(column: list[str]) -> bool:
    try:
        # is_ip's first try for a value without a colon; a value with one fails it.
        list(map(inet_pton, repeat(AF_INET), column))
    except (OSError, ValueError):
        return all(map(is_ip, set(column)))
    return True


def _lists_pass(column: list[list[Any]]) -> bool:
    if max(map(len, column)) > MAX_ITEMS:
        return False
    try:
        "".join(chain.from_iterable(column))  # as in _strings_problem, for all lists at once
    except TypeError:
        return False
    return True


def _longs_pass(low: int, high: int, column: list[int]) -> bool:
    return low <= min(column) and max(column) <= high


def _actions_pass(column: list[str]) -> bool:
    try:
        for action in set(column):
            lookup(action)
    except UnknownActionError:
        return False
    return True


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
_COLUMN_KINDS: dict[FieldType, Callable[[list[Any]], bool]] = {
    FieldType.DATE: _dates_pass, FieldType.IP: _ips_pass, FieldType.KEYWORDS: _lists_pass,
}
#: The same rules as column checks, for the fields a plan checks.
_COLUMN_CHECKS: dict[str, Callable[[list[Any]], bool]] = {
    name: partial(_longs_pass, low, high) for name, (low, high) in _RANGES.items()
} | {name: _COLUMN_KINDS[kind] for name, kind in FIELDS.items() if kind in _COLUMN_KINDS}
