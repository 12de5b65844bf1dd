"""Event timestamps: UTC, microsecond precision, RFC 3339 with a `Z` suffix."""

from __future__ import annotations

import time
from datetime import UTC, datetime

_last_second: list[tuple[int, str]] = [(-1, "")]


def format_timestamp(ns: int) -> str:
    """Format nanoseconds since the epoch as `2026-11-27T08:16:29.123456Z`."""
    sec, rem = divmod(ns, 1_000_000_000)
    # Events come in bursts within one second; formatting the date part once per second
    # halves the cost of a timestamp. A list cell keeps the cache race-free enough: the
    # worst a concurrent writer does is replace it with an equally valid pair.
    cached_sec, base = _last_second[0]
    if cached_sec != sec:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _last_second[0] = (sec, base)
    return f"{base}.{rem // 1000:06d}Z"


def utc_now() -> str:
    """The current time as an event timestamp."""
    return format_timestamp(time.time_ns())


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; a value without an offset is refused, not guessed.

    Raises ValueError with the offending text.
    """
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return value.astimezone(UTC)
