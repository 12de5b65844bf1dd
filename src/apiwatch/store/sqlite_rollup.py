"""The SQLite store's side of `apiwatch.store.rollup`: the `minutes` table and counting.

`minutes` is WITHOUT ROWID and keyed minute-first, so a batch of recent events updates a few
neighbouring pages. It holds interned term ids, as `events` does; an absent action or outcome
is 0 (no term has that id), which a filter treats as it treats NULL: `compile_filter` negates
with IS NOT TRUE, so false and unknown leaves give the same result.
"""

# SQL here is assembled from fixed fragments and internal column names only; every value the
# user controls is a bound parameter, so S608 does not apply.
# ruff: noqa: S608

from __future__ import annotations

import operator
import sqlite3
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any

from apiwatch.store.base import HOT, LeafSql, Query, build_where, hot_field
from apiwatch.store.rollup import MINUTE, Group, Source
from apiwatch.store.sqlite_addresses import v4_text

SCHEMA = """CREATE TABLE IF NOT EXISTS minutes (
    ts INTEGER NOT NULL, action INTEGER NOT NULL, outcome INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (ts, action, outcome)) WITHOUT ROWID"""
_UPSERT = """INSERT INTO minutes VALUES (?, ?, ?, ?)
    ON CONFLICT (ts, action, outcome) DO UPDATE SET n = n + excluded.n"""
#: Where action and outcome sit in a row of `events`: (index, ts, *HOT ids, doc).
_TS = operator.itemgetter(1)
_ACTION = operator.itemgetter(2 + list(HOT).index("event.action"))
_OUTCOME = operator.itemgetter(2 + list(HOT).index("event.outcome"))
_FLOOR = f"ts - ((ts % {MINUTE}) + {MINUTE}) % {MINUTE}"  # rollup.floor_to(ts, MINUTE) in SQL


def create(db: sqlite3.Connection) -> None:
    """Create `minutes` if missing and count what `events` holds into it (a new file, or one
    made before the rollup), in one transaction."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'minutes'").fetchone():
        return
    db.execute("BEGIN")
    try:
        db.execute(SCHEMA)
        db.execute(
            f"INSERT INTO minutes SELECT {_FLOOR}, coalesce(action, 0), coalesce(outcome, 0), "
            "count(*) FROM events GROUP BY 1, 2, 3"
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def add(db: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Count a batch of new `events` rows into `minutes` (inside the open transaction)."""
    if not rows:
        return
    stamps = list(map(_TS, rows))
    minutes = list(map(operator.sub, stamps, map(operator.mod, stamps, repeat(MINUTE))))
    actions, outcomes = list(map(_ACTION, rows)), list(map(_OUTCOME, rows))
    if actions.count(actions[0]) == len(actions) and outcomes.count(outcomes[0]) == len(outcomes):
        # One action and outcome all along (a login storm, a source of one kind): the minutes
        # alone are counted, without a key tuple per row.
        counted = [(minute, actions[0], outcomes[0], n) for minute, n in Counter(minutes).items()]
    else:
        counts = Counter(zip(minutes, actions, outcomes, strict=True))
        counted = [(*key, n) for key, n in counts.items()]
    db.executemany(_UPSERT, counted)


class Counts:
    """`rollup.Reader` on a SQLite store: its query runner and filter compiler."""

    def __init__(self, rows: Callable[[str, Sequence[Any]], list[Any]], leaf: LeafSql) -> None:
        self._rows = rows
        self._leaf = leaf

    def counts(self, source: Source, q: Query, group: Group) -> Mapping[Any, int]:
        """Counts of `q` from `source` by `group` (see `rollup.Reader`)."""
        table, total = ("events", "count(*)") if source == "events" else ("minutes", "sum(e.n)")
        where, params = build_where(q, self._leaf, "?", paged=False)
        if group is None:
            n = self._rows(f"SELECT {total} FROM {table} e{where}", params)[0][0]
            return {None: n or 0}
        if isinstance(group, int):
            bucket = f"(e.ts / {group}) * {group}"
            sql = f"SELECT {bucket} AS b, {total} FROM {table} e{where} GROUP BY b"
            return dict(self._rows(sql, params))
        width, field = (None, group) if isinstance(group, str) else group
        column = hot_field(field)
        bucket = "NULL" if width is None else f"(e.ts / {width}) * {width}"
        # An IPv4 source address has no `terms` row (`sqlite_addresses`): its text is computed.
        sql = (
            f"SELECT c.b, coalesce(t.value, {v4_text('c.term')}), c.n FROM (SELECT {bucket} AS b, "
            f"e.{column} AS term, {total} AS n FROM {table} e{where} GROUP BY b, term) c "
            "LEFT JOIN terms t ON t.id = c.term WHERE c.term < 0 OR t.id IS NOT NULL"
        )
        if width is None:
            return {value: n for _, value, n in self._rows(sql, params)}
        return {(b, value): n for b, value, n in self._rows(sql, params)}
