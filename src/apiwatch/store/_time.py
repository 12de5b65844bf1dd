"""Times in the store: integer microseconds since the Unix epoch, UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

from apiwatch.events.clock import parse_timestamp

_native_micros: Callable[[list[str]], list[int | None]] | None
try:
    from apiwatch.store._hot_columns import micros as _native_micros
except ImportError:  # built without a C compiler: `event_micros` reads every one
    _native_micros = None

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
#: The second-resolution prefix last seen and its epoch seconds; events arrive in bursts
#: within one second, so most timestamps only need their fraction parsed.
_last_prefix: list[tuple[str, int]] = [("", 0)]


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return (moment - _EPOCH) // _MICRO


def from_micros(micros: int) -> datetime:
    """The aware UTC datetime of `micros` since the epoch."""
    return _EPOCH + timedelta(microseconds=micros)


def event_micros(text: str) -> int:
    """Microseconds since the epoch of an event's RFC 3339 `@timestamp`.

    The canonical apiwatch form `2026-11-27T08:16:29.123456Z` takes a cached fast path;
    anything else goes through `parse_timestamp`. Raises ValueError on a bad timestamp.
    """
    if len(text) == 27 and text[19] == "." and text[26] == "Z" and text[20:26].isdigit():
        prefix = text[:19]
        cached, seconds = _last_prefix[0]
        if cached != prefix:
            seconds = to_micros(parse_timestamp(prefix + "Z")) // 1_000_000
            _last_prefix[0] = (prefix, seconds)
        return seconds * 1_000_000 + int(text[20:26])
    return to_micros(parse_timestamp(text))


def events_micros(texts: list[str]) -> list[int]:
    """`event_micros` of each of `texts` (strings): the collector's own form in one C call
    (`_hot_columns.micros`) where it is built, any other by `event_micros`. Raises ValueError
    on a bad timestamp."""
    if _native_micros is None:
        return list(map(event_micros, texts))
    values = _native_micros(texts)
    if None in values:
        return [
            event_micros(text) if value is None else value
            for text, value in zip(texts, values, strict=True)
        ]
    return cast("list[int]", values)
