"""Aggregates over a time range without reading every event (issue 7: dashboards at 1M events).

`count`, `histogram` and `top` cut a range into whole hours, then whole minutes, then the
partial minutes at either end (`_pieces`). The partial minutes are counted from the events (a
short walk of the time index); the whole blocks from one of:

* the `minutes` rollup: events per (minute, event.action, event.outcome), written by `insert`
  in the same transaction as the events, so it is derived data like them (`apiwatch reindex`
  rebuilds it, the ledger replay after a crash restores it with the events). It answers any
  filter on action and outcome alone: all events of a row share them, so the filter holds for
  the row exactly when it holds for each of its events.
* a `MinuteCache` of per-block results for any other filter or field (top offending IPs among
  failures, a panel's own query): a block is read from the events once, then reused while its
  event count in `minutes` is unchanged.

Without a start (`since`), or with a range inside one minute, everything comes from the events.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from apiwatch.store._time import from_micros, to_micros
from apiwatch.store.base import Query, canonical_ip, hot_field
from apiwatch.store.errors import QueryError
from apiwatch.store.query import And, Node, Not, Or

MINUTE = 60_000_000  # µs
HOUR = 60 * MINUTE
#: Blocks a range is cut into, largest first (see `_pieces`).
UNITS = (HOUR, MINUTE)
#: The fields of `minutes` rows.
GROUPED = frozenset({"event.action", "event.outcome"})

Source = Literal["events", "minutes"]
#: How `Reader.counts` groups: by the value of a hot field (its name), by histogram bucket
#: (its width in µs), by both (a (width, field) pair), or not at all (None).
Group = str | int | tuple[int, str] | None


class Reader(Protocol):
    """What a backend provides: counts of one source, grouped."""

    def counts(self, source: Source, q: Query, group: Group) -> Mapping[Any, int]:
        """Counts of the events `q` selects, read from `source`, by group value.

        Values of a hot field are text (IPs canonical), absent values left out; buckets are
        their start in µs; the total is keyed None.
        """


class Partials(Protocol):
    """Counts per block of whole blocks (see `apiwatch.store.minute_cache`)."""

    def partials(
        self, reader: Reader, q: Query, unit: int, field: str | None
    ) -> dict[int, Mapping[Any, int]]:
        """By block start: counts of `q`'s events by `field` value, or in total (None)."""


def count(reader: Reader, cache: Partials, q: Query) -> int:
    """How many events match `q`."""
    total = 0
    for unit, part in _pieces(q, UNITS):
        if unit is None:
            total += reader.counts("events", part, None).get(None, 0)
        elif _grouped(q.filter):
            total += reader.counts("minutes", part, None).get(None, 0)
        else:
            total += sum(p.get(None, 0) for p in cache.partials(reader, part, unit, None).values())
    return int(total)


def histogram(reader: Reader, cache: Partials, q: Query, width: int) -> list[tuple[datetime, int]]:
    """Counts per bucket of `width` µs (positive), oldest first, empty buckets omitted."""
    counts: Counter[int] = Counter()
    for unit, part in _pieces(q, tuple(u for u in UNITS if width % u == 0)):
        if unit is None:
            counts.update(reader.counts("events", part, width))
        elif _grouped(q.filter):
            counts.update(reader.counts("minutes", part, width))
        else:
            for start, partial in cache.partials(reader, part, unit, None).items():
                counts[start // width * width] += partial.get(None, 0)
    return [(from_micros(b), n) for b, n in sorted(counts.items()) if n]


def top(reader: Reader, cache: Partials, field: str, q: Query, n: int) -> list[tuple[str, int]]:
    """The `n` most frequent values of a hot field; ties by value (IPs by address)."""
    hot_field(field)
    if n < 1:
        raise QueryError(f"top needs n >= 1, not {n}")
    counts: Counter[str] = Counter()
    for unit, part in _pieces(q, UNITS):
        if unit is None:
            counts.update(reader.counts("events", part, field))
        elif field in GROUPED and _grouped(q.filter):
            counts.update(reader.counts("minutes", part, field))
        else:
            for partial in cache.partials(reader, part, unit, field).values():
                counts.update(partial)
    # Other values by code point, which is UTF-8 byte order: SQLite's BINARY, PostgreSQL's "C".
    tie = _address if field == "source.ip" else str
    return heapq.nsmallest(n, counts.items(), key=lambda item: (-item[1], tie(item[0])))


def floor_to(micros: int, unit: int) -> int:
    """The start of the `unit`-wide block holding `micros` (floor, also before 1970)."""
    return micros - micros % unit


def _pieces(q: Query, units: tuple[int, ...]) -> list[tuple[int | None, Query]]:
    """`q` cut into ranges of whole blocks of the largest unit that fits, then of the next
    unit, down to the partial minutes at either end (unit None: read from the events).

    Blocks larger than the last unit end before the current one (by the clock): a block that
    still receives events is read again whole after each change, so it had better be small.

    Without a start, everything is read from the events (that would be every block ever
    kept), and so is a start at or before the epoch: SQL divides negative times toward zero,
    so buckets there are not whole minutes.
    """
    if q.since is None or to_micros(q.since) <= 0:
        return [(None, q)]
    low = to_micros(q.since)
    high = None if q.until is None else to_micros(q.until)
    for at, unit in enumerate(units):
        body_low = -floor_to(-low, unit)  # the first whole block
        body_high = None if high is None else floor_to(high, unit)
        if at < len(units) - 1:
            current = floor_to(to_micros(datetime.now(UTC)), unit)
            body_high = current if body_high is None else min(body_high, current)
        if body_high is not None and body_high <= body_low:
            continue
        pieces: list[tuple[int | None, Query]] = [(unit, replace(
            q, since=from_micros(body_low),
            until=None if body_high is None else from_micros(body_high)))]
        if body_low > low:
            pieces += _pieces(replace(q, until=from_micros(body_low)), units[at + 1:])
        if high is not None and body_high is not None and body_high < high:
            pieces += _pieces(replace(q, since=from_micros(body_high)), units[at + 1:])
        return pieces
    return [(None, q)]


def _grouped(node: Node | None) -> bool:
    """Whether a filter reads only the fields `minutes` keeps."""
    if node is None:
        return True
    if isinstance(node, And | Or):
        return all(_grouped(item) for item in node.items)
    if isinstance(node, Not):
        return _grouped(node.item)
    return node.field in GROUPED


def _address(value: str) -> tuple[int, bytes]:
    address = canonical_ip(value)
    return (0, b"") if address is None else (address.version, address.packed)
