"""The JSON-lines decoder accepts valid events and names the line and field of any error."""

from __future__ import annotations

import io
from unittest.mock import patch

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apiwatch.errors import DecodeError
from apiwatch.formats import jsonl
from apiwatch.formats.jsonl import MAX_LINE_BYTES, decode_line, iter_decode, read_lines

TS = "2025-01-02T03:04:05.123+02:00"


def _line(**fields: object) -> bytes:
    return orjson.dumps({"@timestamp": TS, "event.action": "authn_login_fail", **fields})


def test_flat_and_nested_keys_give_the_same_event() -> None:
    """Nested ECS objects are flattened to dotted names."""
    nested = orjson.dumps({"@timestamp": TS, "event": {"action": "authn_login_fail"},
                           "source": {"ip": "192.0.2.1", "port": 80}})
    event = decode_line(nested, 1)
    assert event["source.ip"] == "192.0.2.1"
    assert event["source.port"] == 80
    assert list(event)[:3] == ["@timestamp", "log.level", "message"]
    assert event["event.outcome"] == "failure"  # filled from the vocabulary


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (_line(**{"source.ip": "999.1.1.1"}), "source.ip"),
        (_line(**{"source.port": 70000}), "source.port"),
        (_line(**{"source.port": "80"}), "source.port"),
        (_line(**{"source.port": True}), "source.port"),
        (_line(**{"user.name": 5}), "user.name"),
        (_line(**{"event.category": ["web", 1]}), "event.category"),
        (_line(**{"event.risk_score": "high"}), "event.risk_score"),
        (_line(**{"nonsense.field": "x"}), "nonsense.field"),
        (_line(user="not-an-object"), "user"),
        (_line(labels={"team": 1}), "labels.team"),
        (_line(labels={"a.b": "x"}), "labels.a.b"),
        (_line(**{"user.name": "a"}, user={"name": "b"}), "user.name"),
        (orjson.dumps({"@timestamp": TS}), "event.action"),
        (orjson.dumps({"event.action": "authn_login_fail"}), "@timestamp"),
        (orjson.dumps({"@timestamp": TS, "event.action": "no_such_action"}), "event.action"),
        (orjson.dumps({"@timestamp": "2025-01-02T03:04:05", "event.action": "authn_login_fail"}),
         "@timestamp"),
        (orjson.dumps({"@timestamp": "2025-02-30T00:00:00Z", "event.action": "authn_login_fail"}),
         "@timestamp"),
        (orjson.dumps({"@timestamp": TS, "event.action": "authn_login_fail",
                       "labels": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": "x"}}}}}}}}}),
         "labels.a.b.c.d.e.f.g"),
    ],
)
def test_invalid_fields_are_named(line: bytes, field: str) -> None:
    """Each kind of bad field raises DecodeError naming the line and that field."""
    with pytest.raises(DecodeError) as caught:
        decode_line(line, 42)
    assert (caught.value.line, caught.value.field) == (42, field)


@pytest.mark.parametrize(
    "line", [b"[1]", b"{", b'{"a": 1e999}', b"alice\xff\xfe", b"[" * 2000, b"\xc0\xaf"]
)
def test_malformed_lines_name_the_line(line: bytes) -> None:
    """Non-JSON, non-objects and invalid UTF-8 are errors on that line, with no field."""
    with pytest.raises(DecodeError) as caught:
        decode_line(line, 7)
    assert caught.value.line == 7
    assert caught.value.field is None


def test_invalid_utf8_is_refused_with_its_offset() -> None:
    """Bytes that are not UTF-8 are refused, never guessed at, and the offset is given."""
    with pytest.raises(DecodeError, match="invalid UTF-8 at byte 5"):
        decode_line(b'{"a":\xff}', 1)


def test_iter_decode_numbers_lines_and_skips_blank_ones() -> None:
    """Errors carry their line number; blank lines count but are not errors."""
    items = list(iter_decode([_line() + b"\n", b"\n", b"{oops}\r\n", _line()]))
    assert [type(i).__name__ for i in items] == ["dict", "DecodeError", "dict"]
    assert isinstance(items[1], DecodeError)
    assert items[1].line == 3


def test_read_lines_bounds_an_overlong_line() -> None:
    """An over-long line is cut (and then refused); the next line is read normally."""
    stream = io.BytesIO(b"x" * (MAX_LINE_BYTES + 10) + b"\n" + _line() + b"\n")
    lines = list(read_lines(stream))
    assert len(lines) == 2
    assert len(lines[0]) == MAX_LINE_BYTES + 1
    first, second = iter_decode(lines)
    assert isinstance(first, DecodeError)
    assert "longer" in str(first)
    assert isinstance(second, dict)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_decode_errors(data: bytes) -> None:
    """Fuzz: any bytes decode or raise DecodeError with the line number."""
    try:
        decode_line(data, 3)
    except DecodeError as exc:
        lineno = exc.line
    else:
        lineno = 3
    assert lineno == 3


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["source", "ip", "user", "name", "labels", "x",
                                       "event", "action", "port"]), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["@timestamp", "event.action", "source", "user.name",
                                        "labels", "source.port", "event"]), _json))
def test_arbitrary_json_objects_raise_only_decode_errors(document: dict[str, object]) -> None:
    """Fuzz: structured JSON in known and unknown places decodes or raises DecodeError."""
    try:
        line = orjson.dumps(document)
    except orjson.JSONEncodeError:
        return
    try:
        decode_line(line, 1)
    except DecodeError as exc:
        lineno = exc.line
    else:
        lineno = 1
    assert lineno == 1


PLAN_NAMES = st.sampled_from([
    "@timestamp", "event.action", "source.ip", "http.response.status_code", "event.category",
    "user.name", "event.risk_score", "labels.team", "labels.bad name", "no.such.field",
    "apiwatch.seq", "event.severity", "message", "event.id", "log.level", "ecs.version",
    "event.kind", "event.type", "event.outcome",
])
INTS = st.integers(-(2**63), 2**64 - 1)  # what orjson writes
PLAN_VALUES = st.one_of(
    st.text(max_size=4), INTS, st.floats(allow_nan=False),
    st.booleans(), st.none(), st.lists(st.one_of(st.text(max_size=3), INTS), max_size=3),
    st.sampled_from(["2026-11-27T10:00:00.5Z", "2026-13-01T00:00:00Z", "192.0.2.1", "::1",
                     "authn_login_fail", 401, 99, 700]),
    st.fixed_dictionaries({"ip": st.just("192.0.2.9")}),
)


def _outcome(line: bytes) -> object:
    try:
        event = decode_line(line, 1)
    except DecodeError as exc:
        return (str(exc), exc.field)
    return {k: v for k, v in event.items() if k != "event.id"}  # a filled-in id is random


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(PLAN_NAMES, PLAN_VALUES, max_size=12))
def test_shape_plans_agree_with_field_by_field_checks(document: dict[str, object]) -> None:
    """A line of a shape seen before is checked by its plan (types at once, then the fields
    with rules); the verdict is the field-by-field one, event or error, for any input."""
    line = orjson.dumps(document)
    jsonl._PLANS.clear()
    planned = [_outcome(line), _outcome(line)]  # the plan is made, then used from the table
    with patch.object(jsonl, "_plan_for", lambda shape: jsonl._NO_PLAN):
        jsonl._PLANS.clear()
        assert planned == [_outcome(line)] * 2
