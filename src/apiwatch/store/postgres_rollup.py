"""The PostgreSQL store's side of `apiwatch.store.rollup`: the `minutes` table and counting.

The insert moves a batch from `staging` into `events` and counts the rows it really added
(`RETURNING` of `INSERT ... ON CONFLICT DO NOTHING`) into `minutes` in the same statement, so
a replayed batch adds nothing and concurrent writers add each row once. An absent action or
outcome is NULL in `minutes`, as in `events` (`UNIQUE NULLS NOT DISTINCT`, PostgreSQL 15).
"""

# SQL here is assembled from fixed fragments and internal column names only; every value the
# user controls is a bound parameter, so S608 does not apply.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg

from apiwatch.store.base import LeafSql, Query, build_where, hot_field
from apiwatch.store.rollup import MINUTE, Group, Source

SCHEMA = """CREATE TABLE IF NOT EXISTS minutes (
    ts bigint NOT NULL, action text, outcome text, n bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (ts, action, outcome))"""
_FLOOR = f"ts - ((ts % {MINUTE}) + {MINUTE}) % {MINUTE}"  # rollup.floor_to(ts, MINUTE) in SQL
_COUNT = f"""INSERT INTO minutes SELECT {_FLOOR}, action, outcome, count(*) FROM {{rows}} r
    GROUP BY 1, 2, 3 ON CONFLICT (ts, action, outcome) DO UPDATE SET n = minutes.n + excluded.n"""
#: Moves `staging` into `events` and counts what was added.
MOVE = f"""WITH added AS (INSERT INTO events SELECT * FROM staging ON CONFLICT DO NOTHING
    RETURNING ts, action, outcome) {_COUNT.format(rows="added")}"""


def create(conn: psycopg.Connection[Any]) -> None:
    """Create `minutes` if missing and count what `events` holds into it (a store made before
    the rollup), in the caller's transaction."""
    row = conn.execute("SELECT to_regclass('minutes') IS NULL").fetchone()
    if row is not None and row[0]:
        conn.execute(SCHEMA.encode())
        conn.execute(_COUNT.format(rows="events").encode())


class Counts:
    """`rollup.Reader` on a PostgreSQL store: its query runner and filter compiler."""

    def __init__(self, rows: Callable[[str, Sequence[Any]], list[Any]], leaf: LeafSql) -> None:
        self._rows = rows
        self._leaf = leaf

    def counts(self, source: Source, q: Query, group: Group) -> Mapping[Any, int]:
        """Counts of `q` from `source` by `group` (see `rollup.Reader`)."""
        table, total = ("events", "count(*)") if source == "events" else (
            "minutes", "sum(e.n)::bigint")
        where, params = build_where(q, self._leaf, "%s", paged=False)
        if group is None:
            n = self._rows(f"SELECT {total} FROM {table} e{where}", params)[0][0]
            return {None: n or 0}
        if isinstance(group, int):
            bucket = f"(e.ts / {group}::bigint) * {group}::bigint"
            sql = f"SELECT {bucket} AS b, {total} FROM {table} e{where} GROUP BY b"
            return dict(self._rows(sql, params))
        width, field = (None, group) if isinstance(group, str) else group
        column = hot_field(field)
        bucket = "NULL::bigint" if width is None else f"(e.ts / {width}::bigint) * {width}::bigint"
        where += (" AND " if where else " WHERE ") + f"e.{column} IS NOT NULL"
        sql = (
            f"SELECT {bucket} AS b, e.{column}, {total} FROM {table} e{where} "
            f"GROUP BY b, e.{column}"
        )
        if width is None:
            return {str(value): n for _, value, n in self._rows(sql, params)}
        return {(b, str(value)): n for b, value, n in self._rows(sql, params)}
