"""`decode_lines` gives, line for line, what `decode_line` gives: the same events, key order
included, and the same errors (message, line and field) in their place."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apiwatch.errors import DecodeError
from apiwatch.events.fields import FieldType, field_type
from apiwatch.events.ipaddr import is_ip
from apiwatch.events.model import make_event
from apiwatch.events.vocabulary import VOCABULARY
from apiwatch.formats import jsonl
from apiwatch.formats.jsonl import (
    MAX_ITEMS,
    MAX_LINE_BYTES,
    decode_batch,
    decode_line,
    decode_lines,
)

TS = "2025-01-02T03:04:05.123+02:00"
BASICS = sorted(jsonl._BASICS)  # what a complete line carries: decode_line keeps it as it is
EXTRAS = [
    "source.ip", "client.ip", "http.response.status_code", "source.port", "apiwatch.seq",
    "user.name", "url.path", "apiwatch.redacted", "host.ip", "labels.team", "event.created",
    "event.duration", "event.risk_score",  # a float field: no plan, every line on its own
]
INTS = st.integers(-(2**63), 2**64 - 1)  # what orjson writes
ANY_JSON = st.one_of(
    st.none(), st.booleans(), INTS, st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5), st.lists(st.text(max_size=2), max_size=2),
    st.fixed_dictionaries({"x": st.text(max_size=2)}),  # a nested object: a field x below
)


def _verdict(item: object, line: bytes) -> object:
    """What must agree: an error's class, text, line and field; an event's items in order, with
    the types of the values (True == 1), leaving out an `event.id` that make_event made."""
    if isinstance(item, DecodeError):
        return (type(item), str(item), item.line, item.field)
    assert isinstance(item, dict)
    fresh = b'"event.id"' not in line
    return [(k, type(v), v) for k, v in item.items() if not (fresh and k == "event.id")]


def _assert_agree(lines: Sequence[bytes], numbers: Sequence[int] | None = None) -> None:
    expected = []
    for line, number in zip(lines, numbers or range(1, len(lines) + 1), strict=True):
        try:
            expected.append(_verdict(decode_line(line, number), line))
        except DecodeError as exc:
            expected.append(_verdict(exc, line))
    got = decode_lines(lines, numbers)
    assert [_verdict(item, line) for item, line in zip(got, lines, strict=True)] == expected


def _offset(minutes: int) -> str:
    return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@st.composite
def _good_timestamps(draw: st.DrawFn, *, plain: bool = False) -> str:
    """Valid `@timestamp` text; `plain`: the spellings producers write (T, Z or an offset, up to
    6 fraction digits), else any that decode_line takes (t, space, z, up to 9 digits)."""
    moment = draw(st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)))
    digits = draw(st.integers(0, 6 if plain else 9))
    fraction = f"{moment.microsecond:06d}{draw(st.integers(0, 999)):03d}"[:digits]
    separator = "T" if plain else draw(st.sampled_from("Tt "))
    zone = draw(st.sampled_from(["Z"] if plain else ["Z", "z"])
                | st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(_offset))
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}{separator}"
            f"{moment:%H:%M:%S}{'.' + fraction if fraction else ''}{zone}")


@st.composite
def _near_timestamps(draw: st.DrawFn) -> str:
    """RFC 3339 shaped text with each part in its range or just out of it."""
    year = draw(st.sampled_from([0, 1, 1900, 2000, 2023, 2024, 9999]) | st.integers(0, 9999))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute = draw(st.integers(0, 25)), draw(st.integers(0, 60))
    second = draw(st.integers(0, 61))
    fraction = draw(st.sampled_from(["", ".", ".5", ".123456", ".1234567", ".123456789",
                                     ".1234567890"]))
    zone = draw(st.sampled_from(["Z", "z", "", "+0000", "+00", "Z\n"])
                | st.builds("{}{:02d}:{:02d}".format, st.sampled_from("+-"), st.integers(0, 25),
                            st.integers(0, 61)))
    separator = draw(st.sampled_from("Tt x"))
    return (f"{year:04d}-{month:02d}-{day:02d}{separator}{hour:02d}:{minute:02d}:{second:02d}"
            f"{fraction}{zone}")


TRICKY_TIMESTAMPS = [
    "2025-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2024-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "2025-04-31T00:00:00Z",
    "0000-01-01T00:00:00Z", "2025-01-01T00:00:60Z", "2025-13-01T00:00:00Z",
    "2025-01-01T24:00:00Z", "2025-01-01t00:00:00z", "2025-01-01T00:00:00.123456789Z",
    "2025-01-01T00:00:00.1234567890Z", "2025-01-01T00:00:00+24:00", "2025-01-01T00:00:00+23:59",
    "2025-01-01T00:00:00-00:60", "2025-01-01T00:00:00+00:99", "9999-12-31T23:59:59-23:59",
    "2025-01-01T00:00:00", "20250101T000000Z", "2025-W01-1T00:00:00Z", "2025-01-01",
    "2025-01-01T00:00:00Z\n2025-01-01T00:00:00Z", "\uff12025-01-01T00:00:00Z",
    "2025-01-01T00:00:00Z ", "2025-01-01T00:00Z", "2025-01-01T00:00:00+0000",
]
TRICKY_IPS = [
    "01.2.3.4", "1.2.3.256", "1.2.3", "1.2.3.4.5", " 1.2.3.4", "1.2.3.4\n5.6.7.8", "1.2.3.4\x00",
    "\uff11.2.3.4", "fe80::1%eth0", "fe80::1%", "::ffff:1.2.3.4", "::1", "1::2::3", "0.0.0.0",
    "255.255.255.255", "", "localhost", "2001:db8::1/64", "1.2.3.04", "0x1.2.3.4", "1.2.3.4%x",
]


def _good(name: str, *, plain: bool = False) -> st.SearchStrategy[Any]:
    """Values decode_line takes for field `name` (`plain`: timestamps as producers write them)."""
    if name == "event.action":
        return st.sampled_from(sorted(VOCABULARY))
    if name in jsonl._RANGES:
        return st.integers(*jsonl._RANGES[name])
    return {
        FieldType.KEYWORD: st.text(max_size=6),
        FieldType.TEXT: st.text(max_size=6),
        FieldType.DATE: _good_timestamps(plain=plain),
        FieldType.LONG: st.integers(-(2**63), 2**63 - 1),
        FieldType.FLOAT: st.floats(allow_nan=False, allow_infinity=False) | st.integers(-9, 9),
        FieldType.KEYWORDS: st.lists(st.text(max_size=3), max_size=3),
        FieldType.IP: st.ip_addresses().map(str),
    }[field_type(name) or FieldType.KEYWORD]


def _edgy(name: str) -> st.SearchStrategy[Any]:
    """Values at or past the edge of field `name`'s rule, and values of any JSON type."""
    kind = field_type(name)
    if name == "event.action":
        near: st.SearchStrategy[Any] = st.sampled_from(["no_such_action", "", "AUTHN_LOGIN_FAIL"])
    elif name in jsonl._RANGES:
        low, high = jsonl._RANGES[name]
        near = st.sampled_from([low - 1, high + 1, low, high, True, False, float(low), str(low)])
    elif kind is FieldType.DATE:
        near = _near_timestamps() | st.sampled_from(TRICKY_TIMESTAMPS)
    elif kind is FieldType.IP:
        near = st.sampled_from(TRICKY_IPS) | st.text("0123456789.:abcdef%", max_size=16)
    elif kind is FieldType.KEYWORDS:
        near = st.sampled_from([["a", 1], [None], "web", [["web"]], [], ["x"] * MAX_ITEMS,
                                ["x"] * (MAX_ITEMS + 1), [True]])
    elif kind is FieldType.LONG:
        near = st.sampled_from([True, 1.5, "7", 2**64 - 1, -(2**63)])
    else:
        near = st.sampled_from([5, None, ["a"], True, "\n"])
    return near | ANY_JSON


RAW_LINES = [
    b"{", b"[1]", b"null", b"5", b'"x"', b"", b" ", b"\xff", b'{"a":\xff}', b"alice\xff\xfe",
    b"\xc0\xaf", b"[" * 2000, b'{"a": 1e999}', b'{"event.severity": 18446744073709551616}',
    b'{"event": {"action": "authn_login_fail"}, "@timestamp": "' + TS.encode() + b'"}',
    b'{"source": {"ip": "192.0.2.1"}, "source.ip": "192.0.2.1"}',
    b'{"@timestamp": "' + TS.encode() + b'", "@timestamp": 5, "event.action": "authz_fail"}',
    b'{"labels": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": "x"}}}}}}}}}',
    b'{"@timestamp": "' + TS.encode() + b'", "event.action": "authn_login_fail"}',
    orjson.dumps(make_event("authn_login_fail", {"@timestamp": TS, "labels.bad name": "x"})),
]


@st.composite
def _lines(draw: st.DrawFn, shapes: list[list[str]]) -> bytes:
    """One line: of one of `shapes` (values good, some or all near their edge, a field dropped or
    objects nested), or a line that is not an event."""
    shape = draw(st.sampled_from(shapes))
    kind = draw(st.sampled_from(["good"] * 6 + ["one bad", "any", "incomplete", "nested", "raw"]))
    if kind == "raw":
        return draw(st.sampled_from(RAW_LINES) | st.binary(max_size=12))
    document = {name: draw(_good(name)) for name in shape}
    if kind == "one bad":
        name = draw(st.sampled_from(shape))
        document[name] = draw(_edgy(name))
    elif kind == "any":
        document = {name: draw(_good(name) | _edgy(name)) for name in shape}
    elif kind == "incomplete":
        del document[draw(st.sampled_from(shape))]
    elif kind == "nested":
        inner = {k.split(".", 1)[1]: document.pop(k) for k in list(document)
                 if k.startswith("event.")}
        document["event"] = inner
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:  # an integer past 64 bits
        return b"{"


SHAPES = st.lists(st.lists(st.sampled_from(EXTRAS), unique=True, max_size=5), min_size=1,
                  max_size=3).flatmap(
    lambda extras: st.tuples(*(st.permutations(BASICS + more) for more in extras))
)


@st.composite
def _batches(draw: st.DrawFn) -> list[bytes]:
    shapes = [list(shape) for shape in draw(SHAPES)]
    return draw(st.lists(_lines(shapes), max_size=70))


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_batches(), st.booleans())
def test_batches_decode_as_line_by_line(lines: list[bytes], numbered: bool) -> None:
    """Lines of a few shapes, mostly good, some bad in every way a field or a line can be."""
    numbers = [7 * i + 3 for i in range(len(lines))] if numbered else None
    _assert_agree(lines, numbers)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_batches())
def test_a_batch_shape_is_named_only_when_every_event_has_it(lines: list[bytes]) -> None:
    """`decode_batch` names the keys of the batch's events (the pipeline then skips its own
    check of them) only when every line decoded, each event to exactly those keys in order."""
    results, shape = decode_batch(lines)  # `decode_lines` is its first half
    if shape is not None:
        assert all(type(event) is dict and tuple(event) == shape for event in results)


def test_a_batch_of_one_shape_is_named() -> None:
    line = orjson.dumps(make_event("authn_login_fail", {"@timestamp": TS, "user.name": "a"}))
    events, shape = decode_batch([line, line])
    assert isinstance(events[0], dict)
    assert shape == tuple(orjson.loads(line)) == tuple(events[0])
    assert decode_batch([line, line[:-1]])[1] is None  # a bad line
    assert decode_batch([line, orjson.dumps({**orjson.loads(line), "url.path": "/"})])[1] is None


@st.composite
def _good_lines(draw: st.DrawFn, shape: list[str]) -> bytes:
    return orjson.dumps({name: draw(_good(name, plain=True)) for name in shape})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SHAPES.flatmap(lambda shapes: st.lists(
    st.sampled_from(shapes).flatmap(lambda shape: _good_lines(list(shape))), min_size=1,
    max_size=40)))
def test_good_lines_never_go_line_by_line(lines: list[bytes]) -> None:
    """Complete lines of the plain kind, in any of a few shapes, all take the column checks:
    decode_line is not called (were it, a batch would cost what it cost before)."""
    lines = [line for line in lines if b"event.risk_score" not in line]  # no plan for floats
    expected = [decode_line(line, 1) for line in lines]
    with patch.object(jsonl, "decode_line", side_effect=AssertionError("slow path")):
        assert decode_lines(lines) == expected


@settings(max_examples=500, deadline=None)
@given(_good_timestamps() | _near_timestamps() | st.sampled_from(TRICKY_TIMESTAMPS) | st.text())
def test_date_column_check_never_takes_what_decode_line_refuses(value: str) -> None:
    """The column check of dates may refuse a good value (decode_line then decides) but never
    takes a bad one."""
    if jsonl._dates_pass([value]):
        assert jsonl._date_problem(value) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(_good_timestamps(plain=True), min_size=1, max_size=5))
def test_date_column_check_takes_plain_timestamps(values: list[str]) -> None:
    """What producers write (T, Z or an offset, up to 6 fraction digits) passes at once."""
    assert jsonl._dates_pass(values)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.ip_addresses().map(str) | st.sampled_from(TRICKY_IPS) | st.text(max_size=12),
                min_size=1, max_size=4))
def test_ip_column_check_is_is_ip(values: list[str]) -> None:
    """The column check of addresses says what `is_ip` says of every value."""
    assert jsonl._ips_pass(values) == all(map(is_ip, values))


def _line(**fields: object) -> bytes:
    return orjson.dumps(make_event("authn_login_fail", {
        "@timestamp": TS, "source.ip": "192.0.2.1", "http.response.status_code": 401, **fields,
    }))


#: A value of each field with a column check, and of a few plain ones, for a complete line.
GOOD = {
    "@timestamp": TS, "source.ip": "192.0.2.1", "event.category": ["authentication"],
    "http.response.status_code": 401, "source.port": 443, "apiwatch.seq": 1,
    "event.action": "authn_login_fail", "user.name": "alice", "labels.team": "red",
    "event.severity": 4,
}
#: Values at the edge of each rule, bad or good, as (field, value).
EDGES: list[tuple[str, Any]] = [
    *(("@timestamp", value) for value in [
        "2025-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2024-02-29T23:59:59Z",
        "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2025-01-01T00:00:60Z",
        "2025-13-01T00:00:00Z", "2025-00-01T00:00:00Z", "2025-01-01T24:00:00Z",
        "2025-01-01T00:00:00+24:00", "2025-01-01T00:00:00-23:59", "2025-01-01T00:00:00+00:60",
        "2025-01-01t00:00:00z", "2025-01-01 00:00:00Z", "2025-01-01T00:00:00.123456789Z",
        "2025-01-01T00:00:00.1234567890Z", "2025-01-01T00:00:00",
        "2025-01-01T00:00:00Z\n2025-01-01T00:00:00Z", "\uff12025-01-01T00:00:00Z", 5, None,
    ]),
    *(("source.ip", value) for value in [
        "01.2.3.4", "1.2.3.256", "1.2.3.4\n5.6.7.8", "1.2.3.4\x00", "1::2::3", "fe80::1%eth0",
        "::1", "0.0.0.0", 5, ["192.0.2.1"],
    ]),
    *(("event.category", value) for value in [
        ["a", 1], [None], "web", [["web"]], ["x"] * MAX_ITEMS, ["x"] * (MAX_ITEMS + 1), [],
    ]),
    *(("http.response.status_code", value) for value in [99, 100, 599, 600, True, 401.0, "401"]),
    *(("source.port", value) for value in [-1, 0, 65535, 65536, False]),
    *(("apiwatch.seq", value) for value in [True, 1.5, "7", 2**64 - 1, -(2**63)]),
    *(("event.action", value) for value in ["no_such_action", "authz_fail", 5, None]),
    *(("user.name", value) for value in [5, None, ["a"], {"x": "y"}]),
    ("labels.team", 1), ("event.severity", True),
]


@pytest.mark.parametrize(("name", "value"), EDGES, ids=[f"{n}={v!r:.40}" for n, v in EDGES])
def test_one_value_at_the_edge_among_good_lines(name: str, value: Any) -> None:
    """One line of a batch holds the value, its other fields and the other lines are good."""
    lines = [_line(**GOOD)] * 30
    lines[13] = _line(**GOOD | {name: value})
    _assert_agree(lines)


def test_one_bad_line_among_many_leaves_the_rest_to_the_column_checks() -> None:
    """A bad line is reported where it is; the halving leaves fewer than 2 * _FEW lines (the
    bad one among them) to decode_line, not the whole batch."""
    lines = [_line(**{"user.name": f"user{i}"}) for i in range(500)]
    lines[321] = _line(**{"source.ip": "192.0.2.01"})
    with patch.object(jsonl, "decode_line", wraps=decode_line) as one_by_one:
        results = decode_lines(lines)
    assert 1 <= one_by_one.call_count < 2 * jsonl._FEW
    error = results[321]
    assert isinstance(error, DecodeError)
    assert (error.line, error.field) == (322, "source.ip")
    assert all(isinstance(item, dict) for i, item in enumerate(results) if i != 321)
    _assert_agree(lines)


def test_lines_of_as_many_keys_are_grouped_by_their_keys() -> None:
    """Other keys in as many (a bad port where a name was, an unknown field, a bad label name)
    are another shape, with its own checks."""
    lines = [_line(**{"user.name": "alice"})] * 20 + [
        _line(**{"source.port": "80"}), _line(nonsense="x"), _line(**{"labels.bad name": "x"}),
        _line(**{"labels.team": "x"}),
    ]
    _assert_agree(lines)


def test_errors_carry_the_numbers_given() -> None:
    lines = [_line(), b"{oops", _line(**{"source.port": 70000}), _line()]
    results = decode_lines(lines, [10, 12, 15, 16])
    assert [item.line for item in results if isinstance(item, DecodeError)] == [12, 15]
    assert isinstance(results[2], DecodeError)
    assert results[2].field == "source.port"
    _assert_agree(lines, [10, 12, 15, 16])


def test_an_overlong_line_is_refused_before_it_is_read() -> None:
    """A line past MAX_LINE_BYTES is refused even when it is valid JSON, as decode_line does."""
    lines = [_line(), _line(message="x" * MAX_LINE_BYTES), _line()]
    results = decode_lines(lines)
    assert isinstance(results[1], DecodeError)
    assert "longer" in str(results[1])
    _assert_agree(lines)


def test_the_first_problem_of_a_line_is_the_one_reported() -> None:
    """Several bad fields: the error is the one decode_line reports first."""
    lines = [_line()] * 20 + [
        _line(**{"@timestamp": "2025-02-30T00:00:00Z", "source.ip": "x", "event.type": [1]}),
        _line(**{"http.response.status_code": True, "event.category": "web"}),
        _line(**{"source.ip": "::1", "event.action": "no_such_action"}),
    ]
    _assert_agree(lines)


def test_an_empty_batch_is_empty() -> None:
    assert decode_lines([]) == []


def test_the_events_are_those_decode_line_returns() -> None:
    """Complete good lines come back as decode_line returns them: equal, keys in their order."""
    lines = [_line(), _line(**{"source.ip": "2001:db8::1", "labels.team": "red"}),
             _line(**{"event.created": "2025-01-02t03:04:05.123456789z"})]
    for event, line in zip(decode_lines(lines), lines, strict=True):
        assert isinstance(event, dict)
        assert list(event.items()) == list(decode_line(line, 1).items())


def test_injection_payloads_in_every_checked_field(shared_data: Path) -> None:
    """Line breaks, NULs, bidi marks, lone surrogates, nesting, invalid UTF-8... in each field
    the column checks look at, and in plain strings, among good lines of the same shape."""
    data = json.loads((shared_data / "payloads" / "injection_payloads.json").read_text())
    good = json.loads(_line())
    lines = [_line()] * 10
    for entry in data["payloads"]:
        payload = entry["payload"]
        if payload is None:  # raw bytes that are not UTF-8
            raw = bytes.fromhex(entry["payload_bytes_hex"])
            lines.append(_line(**{"user.name": "RAW"}).replace(b"RAW", raw))
            continue
        # json.dumps writes lone surrogates as escapes (orjson.dumps refuses them).
        for name in ("@timestamp", "source.ip", "event.action", "user.name", "event.category"):
            if name == "event.category":
                value = [payload]
            else:
                value = good.get(name, "") + payload if isinstance(payload, str) else payload
            lines.append(json.dumps(good | {name: value}).encode())
        lines += [_line()] * 3
    _assert_agree(lines)


@pytest.mark.parametrize("traffic", ["one shape", "three shapes"])
def test_a_large_batch_agrees(traffic: str) -> None:
    """500 lines as a source posts them, in one or several shapes, a few of them bad."""
    shapes: list[dict[str, Any]] = [
        {}, {"apiwatch.redacted": ["user.name"]}, {"url.path": "/a", "source.port": 1},
    ]
    fields = [{"user.name": f"user{i}", "apiwatch.seq": i,
               **shapes[i % (1 if traffic == "one shape" else 3)]} for i in range(500)]
    fields[17]["source.port"] = -1
    lines = [_line(**line) for line in fields]
    lines[400] = b"\xff"
    _assert_agree(lines)


def test_numbers_must_number_every_line() -> None:
    with pytest.raises(ValueError, match="2 line numbers for 3 lines"):
        decode_lines([_line()] * 3, [1, 2])
