"""Ledger records as the index store reads them: decoded, or only their hot fields.

The store's writer needs nine fields of each record; decoding the whole record into a dict
to read them costs three times what `_hot_columns.columns` (C) spends reading them from the
bytes. What that scan leaves (a record with an escape or a byte above ASCII, say) is decoded
by orjson, as is every record where the package was built without a C compiler.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from apiwatch.events import Event
from apiwatch.store.errors import StoreError

_Columns = Callable[[list[bytes], tuple[str, ...]], tuple[list[list[str | None]], list[int]]]
_native_columns: _Columns | None
try:
    from apiwatch.store._hot_columns import columns as _native_columns
except ImportError:  # built without a C compiler: orjson reads every record
    _native_columns = None


def decode_record(record: bytes) -> Event:
    """The event a ledger record holds; StoreError if it is not a JSON object."""
    try:
        event = orjson.loads(record)
    except orjson.JSONDecodeError as exc:
        raise StoreError(f"a ledger record is not JSON: {exc}") from None
    if type(event) is not dict:
        raise StoreError("a ledger record is not a JSON object")
    return event


def record_columns(records: list[bytes], keys: tuple[str, ...]) -> list[list[str | None]]:
    """For each of `keys`, its value in each of `records` if that is a string, else None:
    what `decode_record(record).get(key)` gives when it is a string. StoreError if a record
    is not a JSON object."""
    if _native_columns is None:
        columns: list[list[str | None]] = [[None] * len(records) for _ in keys]
        unread: list[int] | range = range(len(records))
    else:
        columns, unread = _native_columns(records, keys)
    for row in unread:
        event = decode_record(records[row])
        for column, key in zip(columns, keys, strict=True):
            value = event.get(key)
            column[row] = value if type(value) is str else None
    return columns
