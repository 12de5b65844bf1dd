"""Ledger records as the index store reads them (`store/records.py`): the hot fields read
from the bytes by the C scan (`store/_hot_columns.c`) are what orjson's decoding gives."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from apiwatch.store import StoreError, records, sqlite
from apiwatch.store.records import decode_record, record_columns
from apiwatch.store.sqlite_addresses import address_id

KEYS = ("@timestamp", "source.ip", "user.name", "event.action", "a")
_NATIVE = pytest.mark.skipif(records._native_columns is None, reason="built without a C compiler")

_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)  # no lone surrogates
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), _TEXT,
    st.sampled_from(["10.0.0.1", "alice", "2026-11-28T03:01:48.916849Z", 'a"b', "a\\b", "é"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    max_leaves=8,
)
_OBJECTS = st.dictionaries(st.sampled_from(KEYS) | _TEXT, _VALUES, max_size=8)


def expected(data: list[bytes]) -> list[list[Any]]:
    decoded = [orjson.loads(record) for record in data]
    return [[e.get(key) if type(e.get(key)) is str else None for e in decoded] for key in KEYS]


@settings(max_examples=500, deadline=None)
@given(st.lists(_OBJECTS, max_size=6), st.sampled_from([None, 1, "spaced"]))
@example([{"a": "x"}], "spaced")
def test_columns_are_what_decoding_gives(objects: list[dict[str, Any]], layout: Any) -> None:
    """Any objects, written compactly (orjson, as the ledger does) or with spaces and line
    breaks (json), give the values of the wanted keys that decoding them gives."""
    if layout is None:
        data = [orjson.dumps(obj) for obj in objects]
    elif layout == "spaced":
        data = [json.dumps(obj, separators=(" , ", " : ")).encode() for obj in objects]
    else:
        data = [json.dumps(obj, indent=1, ensure_ascii=False).encode() for obj in objects]
    assert record_columns(data, KEYS) == expected(data)


@_NATIVE
@pytest.mark.parametrize(
    ("record", "value", "read"),
    [
        (b'{"a":"x","a":1}', None, True),  # a repeated key: the last one, as decoders give it
        (b'{"a":1,"a":"y"}', "y", True),
        (b'{"b":{"a":"nested"},"a":"top"}', "top", True),
        (b'{"n":-0.5,"t":true,"f":false,"z":null,"l":[1,[2,{}]],"a":"v"}', "v", True),
        (b' { "a" : "s" } ', "s", True),
        (b'{"a":"\\u0041"}', None, False),  # an escape: the decoder's to read
        (b'{"a\\u0000":"x"}', None, False),
        (b'{"a":"\xc3\xa9"}', None, False),  # not ASCII
        (b'{"\xc3\xa9":"x","a":"v"}', None, False),  # not ASCII, in a key
        (b'{"a":"v","b":["\xff"]}', None, False),  # in a value the scan skips
        (b'{"a":"v"}\xff', None, False),  # after the object
        (b'{"a":"x","big":123456789012345678901}', None, False),  # a number orjson reads its way
        (b'{"a":"x","e":1e5}', None, False),
        (b'{"a":"x","z":01}', None, False),  # not JSON: the decoder refuses it
        (b'{"a":"x",}', None, False),
        (b'{"a":"x"} {}', None, False),
        (b'["a"]', None, False),
        (b'{"a":"x', None, False),
        (b"[" * 100 + b"]" * 100, None, False),
        # Containers 64 deep are the scan's limit (MAX_DEPTH); deeper ones go to the decoder.
        (b'{"l":' + b"[" * 63 + b"]" * 63 + b',"a":"v"}', "v", True),
        (b'{"l":' + b"[" * 64 + b"]" * 64 + b',"a":"v"}', None, False),
        (b'{"o":' * 63 + b"{}" + b"}" * 63, None, True),
        (b'{"o":' * 64 + b"{}" + b"}" * 64, None, False),
    ],
)
def test_what_the_c_scan_reads_and_leaves(record: bytes, value: str | None, read: bool) -> None:
    assert records._native_columns is not None
    columns, unread = records._native_columns([b'{"a":"first"}', record], ("a",))
    assert columns == [["first", value]]
    assert unread == ([] if read else [1])


@pytest.mark.parametrize("record", [b'{"a":"x",}', b"[1]", b"", b'"a"'])
def test_a_record_that_is_not_an_object_is_refused(record: bytes) -> None:
    with pytest.raises(StoreError, match="ledger record"):
        record_columns([record], KEYS)
    with pytest.raises(StoreError, match="ledger record"):
        decode_record(record)


def test_without_the_c_scan_orjson_reads_every_record(monkeypatch: pytest.MonkeyPatch) -> None:
    data = [b'{"a":"x","user.name":"\\u00e9"}', b'{"a":1}', b"{}"]
    monkeypatch.setattr(records, "_native_columns", None)
    assert record_columns(data, KEYS) == expected(data)


def test_the_c_scan_is_built() -> None:
    """The README's install builds it here; without it the indexer decodes every record."""
    assert records._native_columns is not None


@_NATIVE
def test_the_c_scan_refuses_wrong_arguments() -> None:
    columns = records._native_columns
    assert columns is not None
    with pytest.raises(TypeError):
        columns((b"{}",), ("a",))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        columns([b"{}", "{}"], ("a",))  # type: ignore[list-item]
    with pytest.raises(TypeError):
        columns([b"{}"], tuple("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"))
    with pytest.raises(TypeError):
        columns([b"{}"], (b"a",))  # type: ignore[arg-type]


@_NATIVE
@settings(max_examples=1000, deadline=None)
@given(st.lists(st.binary(max_size=40) | st.sampled_from(
    [b'{"a":"x"}', b'{"a":', b'{"a":"x"', b'{"a":"x"}}', b'{"a":[}', b'{"a":tru}', b'{"a":-}',
     b'{"a":1.}', b'{"a":"\x01"}', b'{"a" "x"}', b'{,}', b'{"a":"x",,"b":1}']
), max_size=6))
def test_any_bytes_are_read_right_or_left_to_the_decoder(data: list[bytes]) -> None:
    """Fuzz: whatever the bytes, the C scan returns, and a record it reads is one orjson
    decodes to an object with the same values."""
    assert records._native_columns is not None
    columns, unread = records._native_columns(data, KEYS)
    for row, record in enumerate(data):
        if row in unread:
            assert all(column[row] is None for column in columns)
            continue
        event = orjson.loads(record)
        assert type(event) is dict
        assert [column[row] for column in columns] == [
            event.get(key) if type(event.get(key)) is str else None for key in KEYS
        ]


_OCTETS = st.integers(0, 300).map(str) | st.sampled_from(["00", "01", "007", "", "1a", "٣"])


@_NATIVE
@settings(max_examples=1000, deadline=None)
@given(st.lists(
    st.lists(_OCTETS, min_size=3, max_size=5).map(".".join)
    | st.ip_addresses().map(str) | st.text(max_size=16) | st.none() | st.integers(),
    max_size=8,
))
def test_ipv4_ids_are_the_computed_ones(values: list[Any]) -> None:
    """`v4_ids` gives `sqlite_addresses.address_id` of every IPv4 address inet_pton takes, and
    0 (the absent id, looked up by the writer as before) for anything else."""
    expected = [(address_id(v) if type(v) is str else None) or 0 for v in values]
    assert sqlite._native_v4_ids is not None
    assert sqlite._native_v4_ids(values) == expected
