"""Per-block results of aggregates the `minutes` rollup cannot answer, kept in memory.

A top list, count or histogram whose filter reads more than action and outcome (the overview's
top offending IPs among failures, a dashboard panel's query) is computed block by block (hours,
then minutes: `rollup._pieces`) over the whole blocks of its range. Each block's result is kept
with the block's number of events according to `minutes`, and reused while that number is
unchanged: the store only ever adds events, so an unchanged count is an unchanged block. A page
shown again reads the events of the blocks that changed since (the current one, late arrivals),
not the whole range.

The counts are read before the events, so an event added meanwhile makes a kept count too low,
never too high: the block is read again next time. Memory is bounded by MAX_ENTRIES counted
values (about 100 bytes each); the least recently used blocks go first.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from apiwatch.store._time import from_micros
from apiwatch.store.base import Query
from apiwatch.store.query import Node
from apiwatch.store.rollup import Reader

MAX_ENTRIES = 1_000_000
_Key = tuple[Node | None, str | None, int, int]  # filter, field (None: the total), unit, start


class MinuteCache:
    """`rollup.Partials` for one store; safe to share between threads."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[_Key, tuple[int, Mapping[Any, int]]] = OrderedDict()
        self._size = 0
        self._max = max_entries
        self._lock = threading.Lock()

    def partials(
        self, reader: Reader, q: Query, unit: int, field: str | None
    ) -> dict[int, Mapping[Any, int]]:
        """By block start: counts of `q`'s events by `field` value, or in total (None).

        `q`'s range must be whole blocks of `unit` µs; blocks without events are left out.
        """
        totals = reader.counts("minutes", Query(since=q.since, until=q.until), unit)
        found: dict[int, Mapping[Any, int]] = {}
        stale: list[int] = []
        with self._lock:
            for start, events in totals.items():
                key = (q.filter, field, unit, start)
                entry = self._entries.get(key)
                if entry is not None and entry[0] == events:
                    self._entries.move_to_end(key)
                    found[start] = entry[1]
                else:
                    stale.append(start)
        if not stale:
            return found
        # One read from the first stale block to the last: usually the whole range (nothing
        # kept yet) or its last block (the current one).
        fresh: dict[int, Counter[Any]] = {start: Counter() for start in totals
                                          if min(stale) <= start <= max(stale)}
        part = replace(q, since=from_micros(min(stale)), until=from_micros(max(stale) + unit))
        for key, n in reader.counts("events", part, unit if field is None else (unit, field)
                                    ).items():
            start, value = (key, None) if field is None else key
            fresh.setdefault(start, Counter())[value] += n
        found.update(fresh)
        self._keep(q.filter, field, unit, fresh, totals)
        return found

    def _keep(self, node: Node | None, field: str | None, unit: int,
              fresh: dict[int, Counter[Any]], totals: Mapping[int, int]) -> None:
        with self._lock:
            for start, counts in fresh.items():
                key = (node, field, unit, start)
                old = self._entries.pop(key, None)
                if old is not None:
                    self._size -= max(1, len(old[1]))
                self._entries[key] = (totals.get(start, 0), counts)
                self._size += max(1, len(counts))
            while self._size > self._max and self._entries:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._size -= max(1, len(dropped))
