"""The embedded index store: SQLite (stdlib `sqlite3`), WAL, tuned for fast batch inserts.

Design (measured in `bench/store_bench.py`, explained in `docs/store.md`):

* `events` is keyed by the ledger index (the rowid), so appends go to the end of the B-tree.
  Hot keyword fields are interned into `terms` (small integer ids, cached in memory), which
  keeps rows and index entries short.
* The actor timeline (by source IP, user, API key) is served by `postings`, a WITHOUT ROWID
  table keyed (generation, actor, time, index), where a generation is 8192 consecutive ledger
  indexes. Keying by generation first keeps each batch's postings inside a small region of
  the B-tree, so a commit dirties a few hundred pages instead of one page per posting; an
  actor-first key touches pages all over the table and falls to a fifth of the speed.
  `gens` keeps each generation's time span, so a timeline visits the generations that
  overlap its range, newest first, and stops as soon as no later one can place in the page.
* `synchronous=NORMAL` in WAL mode: a commit is not fsynced, so power loss may drop the last
  transactions. That is the right trade here because the store is derived data: the ledger
  is durable before an event is acknowledged, and the store resumes from
  `max_ledger_index()` (or `apiwatch reindex` rebuilds it). Corruption is not a risk in WAL
  mode with NORMAL; only the most recent commits can be lost.
"""

# SQL here is assembled from fixed fragments and internal column names only; every value the
# user controls is a bound parameter (see the injection tests), so S608 does not apply.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from apiwatch.events.fields import FieldType, field_type
from apiwatch.events.model import Event
from apiwatch.store._time import from_micros, to_micros
from apiwatch.store.base import (
    HOT,
    ActorKind,
    Order,
    Page,
    Query,
    bucket_micros,
    build_where,
    canonical_ip,
    check_limit,
    decode_cursor,
    hot_field,
    make_page,
    new_rows,
    order_by,
    timeline_value,
)
from apiwatch.store.errors import QueryError, StoreError
from apiwatch.store.query import Cidr, IPNetwork, Leaf, Range, Term, Wildcard

GEN_BITS = 13  # 8192 ledger indexes per generation; see the module docstring
#: Interned hot fields and the id of each in `terms.field`; the first three are actors.
_FIELD_IDS = {field: number for number, field in enumerate(HOT, 1)}
_ACTOR_IDS = (1, 2, 3)
_HOT_ITEMS = tuple(_FIELD_IDS.items())
_SOURCE_IP = _FIELD_IDS["source.ip"]
_LOW, _HIGH = -(2**63), 2**63 - 1

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS terms (
    id INTEGER PRIMARY KEY, field INTEGER NOT NULL, value TEXT NOT NULL, ip BLOB,
    UNIQUE (field, value));
CREATE INDEX IF NOT EXISTS terms_ip ON terms (field, ip) WHERE ip IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    idx INTEGER PRIMARY KEY, ts INTEGER NOT NULL,
    {", ".join(f"{column} INTEGER" for column in HOT.values())},
    doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE INDEX IF NOT EXISTS events_action ON events (action, ts);
CREATE INDEX IF NOT EXISTS events_route ON events (route, ts);
CREATE INDEX IF NOT EXISTS events_tenant ON events (tenant, ts);
CREATE INDEX IF NOT EXISTS events_source ON events (source, ts);
CREATE TABLE IF NOT EXISTS postings (
    gen INTEGER NOT NULL, actor INTEGER NOT NULL, ts INTEGER NOT NULL, idx INTEGER NOT NULL,
    PRIMARY KEY (gen, actor, ts, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gens (
    gen INTEGER PRIMARY KEY, min_ts INTEGER NOT NULL, max_ts INTEGER NOT NULL);
"""
_INSERT_EVENT = f"INSERT OR IGNORE INTO events VALUES ({', '.join('?' * (len(HOT) + 3))})"
_UPSERT_GEN = """INSERT INTO gens VALUES (?, ?, ?) ON CONFLICT (gen) DO UPDATE SET
    min_ts = min(min_ts, excluded.min_ts), max_ts = max(max_ts, excluded.max_ts)"""


def ip_key(address: object) -> bytes | None:
    """A sortable key of an IP address: version byte, then the packed address.

    Comparing keys orders IPv4 before IPv6 and never mixes the families, as PostgreSQL's
    `inet` does, so a CIDR test is a BETWEEN on keys.
    """
    parsed = canonical_ip(address)
    return None if parsed is None else bytes([parsed.version]) + parsed.packed


def _network_keys(network: IPNetwork) -> tuple[bytes, bytes]:
    version = bytes([network.version])
    return version + network.network_address.packed, version + network.broadcast_address.packed


def _glob(pattern: str) -> str:
    """The GLOB pattern of a query wildcard: `*` and `?` stay, a `[` becomes literal."""
    return pattern.replace("[", "[[]")


class SqliteStore:
    """The `Store` on one SQLite file; safe to share between threads (one lock)."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA cache_size=-65536")  # 64 MiB: the hot generation's pages
            # Fewer, larger checkpoints: each one fsyncs the database file (measured +12%).
            self._db.execute("PRAGMA wal_autocheckpoint=20000")
            self._db.create_function("aw_ip", 1, ip_key, deterministic=True)
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {path}: {exc}") from exc
        self._lock = threading.Lock()
        self._load_terms()
        self._max: int | None = self._db.execute("SELECT max(idx) FROM events").fetchone()[0]

    def _load_terms(self) -> None:
        # Raw values map to ids; an invalid IP maps to 0 (stored as NULL) so it is parsed once.
        self._terms: dict[tuple[int, str], int] = {
            (field, value): term
            for term, field, value in self._db.execute("SELECT id, field, value FROM terms")
        }
        self._next_term = max(self._terms.values(), default=0) + 1

    def _intern(self, field: int, value: str, new: list[tuple[int, int, str, bytes | None]]) -> int:
        """The id of a term not in the cache, adding it to `new` if it is new to the table."""
        key = None
        if field == _SOURCE_IP:
            address = canonical_ip(value)
            if address is None:
                self._terms[field, value] = 0
                return 0
            key = bytes([address.version]) + address.packed
            known = self._terms.get((field, str(address)))
            if known is not None:
                self._terms[field, value] = known
                return known
            self._terms[field, str(address)] = self._next_term
            value_text = str(address)
        else:
            value_text = value
        term = self._terms[field, value] = self._next_term
        self._next_term += 1
        new.append((term, field, value_text, key))
        return term

    def insert(self, batch: Sequence[tuple[int, Event]]) -> None:
        """Store a batch in one transaction; ledger indexes already stored are skipped."""
        with self._lock:
            rows = new_rows(batch, self._max, self._existing)
            if not rows:
                return
            terms = self._terms
            new_terms: list[tuple[int, int, str, bytes | None]] = []
            event_rows: list[tuple[Any, ...]] = []
            postings: list[tuple[int, int, int, int]] = []
            spans: dict[int, tuple[int, int]] = {}
            for index, ts, event in rows:
                ids: list[int | None] = []
                for field, number in _HOT_ITEMS:
                    value = event.get(field)
                    if value.__class__ is not str:
                        ids.append(None)
                        continue
                    term = terms.get((number, value))
                    if term is None:
                        term = self._intern(number, value, new_terms)
                    ids.append(term or None)
                gen = index >> GEN_BITS
                for position in range(len(_ACTOR_IDS)):
                    actor = ids[position]
                    if actor is not None:
                        postings.append((gen, actor, ts, index))
                low, high = spans.get(gen, (ts, ts))
                spans[gen] = (min(low, ts), max(high, ts))
                event_rows.append((index, ts, *ids, orjson.dumps(event).decode()))
            postings.sort()  # B-tree order: consecutive inserts land on the same pages
            try:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT INTO terms VALUES (?, ?, ?, ?)", new_terms)
                self._db.executemany(_INSERT_EVENT, event_rows)
                self._db.executemany("INSERT OR IGNORE INTO postings VALUES (?, ?, ?, ?)", postings)
                self._db.executemany(_UPSERT_GEN, [(g, lo, hi) for g, (lo, hi) in spans.items()])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                self._load_terms()
                raise StoreError(f"SQLite insert failed: {exc}") from exc
            top = max(index for index, _, _ in rows)
            self._max = top if self._max is None else max(self._max, top)

    def _existing(self, indexes: list[int]) -> list[int]:
        sql = "SELECT idx FROM events WHERE idx IN (SELECT value FROM json_each(?))"
        return [row[0] for row in self._db.execute(sql, (orjson.dumps(indexes).decode(),))]

    def _leaf(self, node: Leaf) -> tuple[str, list[Any]]:
        """SQL for one term: hot fields by their interned column, others from the JSON."""
        if isinstance(node, Range) and node.field == "@timestamp":
            return f"e.ts {node.op.value} ?", [node.value]
        number = _FIELD_IDS.get(node.field)
        if number is not None:
            column = f"e.{HOT[node.field]}"
            if isinstance(node, Term):
                return f"{column} = (SELECT id FROM terms WHERE field = ? AND value = ?)", [
                    number,
                    node.value,
                ]
            if isinstance(node, Wildcard):
                sql = f"{column} IN (SELECT id FROM terms WHERE field = ? AND value GLOB ?)"
                return sql, [number, _glob(node.pattern)]
            if isinstance(node, Cidr):
                sql = f"{column} IN (SELECT id FROM terms WHERE field = ? AND ip BETWEEN ? AND ?)"
                return sql, [number, *_network_keys(node.network)]
        path = f'$."{node.field}"'
        kind = field_type(node.field)
        if kind is FieldType.KEYWORDS:
            match, value = ("GLOB", _glob(node.pattern)) if isinstance(node, Wildcard) else (
                "=",
                node.value if isinstance(node, Term) else None,
            )
            sql = (
                "(json_type(e.doc, ?) = 'array' AND EXISTS (SELECT 1 FROM json_each(e.doc, ?) "
                f"WHERE type = 'text' AND value {match} ?))"
            )
            return sql, [path, path, value]
        if isinstance(node, Cidr):
            return "aw_ip(json_extract(e.doc, ?)) BETWEEN ? AND ?", [
                path,
                *_network_keys(node.network),
            ]
        if isinstance(node, Wildcard):
            sql = "(json_type(e.doc, ?) = 'text' AND json_extract(e.doc, ?) GLOB ?)"
            return sql, [path, path, _glob(node.pattern)]
        if isinstance(node, Term) and isinstance(node.value, bool):
            return "json_type(e.doc, ?) = ?", [path, "true" if node.value else "false"]
        if isinstance(node, Term) and isinstance(node.value, str):
            return "(json_type(e.doc, ?) = 'text' AND json_extract(e.doc, ?) = ?)", [
                path,
                path,
                node.value,
            ]
        operator = "=" if isinstance(node, Term) else node.op.value
        sql = (
            "(json_type(e.doc, ?) IN ('integer', 'real') "
            f"AND json_extract(e.doc, ?) {operator} ?)"
        )
        return sql, [path, path, node.value]

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite query failed: {exc}") from exc

    def query(self, q: Query) -> Page:
        """Events matching `q`, one page at a time."""
        check_limit(q.limit)
        where, params = build_where(q, self._leaf, "?", paged=True)
        sql = f"SELECT e.idx, e.ts, e.doc FROM events e{where}{order_by(q.order)} LIMIT ?"
        rows = self._rows(sql, [*params, q.limit + 1])
        return make_page([(i, ts, orjson.loads(doc)) for i, ts, doc in rows], q.limit, q.order)

    def timeline(
        self,
        actor_kind: ActorKind,
        value: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        order: Order = "newest",
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """Events of one actor, merged from the generations that overlap the time range."""
        check_limit(limit)
        field, stored = timeline_value(actor_kind, value)
        newest = order == "newest"
        low = _LOW if since is None else to_micros(since)
        high = _HIGH if until is None else to_micros(until)
        start = (_HIGH, _HIGH) if newest else (_LOW, _LOW)
        after = decode_cursor(cursor, order) if cursor else start
        with self._lock:
            actor = self._terms.get((_FIELD_IDS[field], stored))
        if not actor:
            return Page([], None)
        spans = self._rows(
            "SELECT gen, min_ts, max_ts FROM gens WHERE max_ts >= ? AND min_ts < ? ORDER BY "
            + ("max_ts DESC" if newest else "min_ts ASC"),
            (low, high),
        )
        comparison, direction = ("<", "DESC") if newest else (">", "ASC")
        probe = (
            "SELECT idx, ts FROM postings WHERE gen = ? AND actor = ? AND ts >= ? AND ts < ? "
            f"AND (ts, idx) {comparison} (?, ?) ORDER BY ts {direction}, idx {direction} LIMIT ?"
        )
        want = limit + 1
        found: list[tuple[int, int]] = []  # (index, ts)
        for gen, gen_low, gen_high in spans:
            if len(found) >= want:
                # Later generations start no later (newest) / no earlier (oldest) than this
                # one; once this one cannot place, none can.
                last = found[-1][1]
                if (gen_high < last) if newest else (gen_low > last):
                    break
            found.extend(self._rows(probe, (gen, actor, low, high, *after, want)))
            found.sort(key=lambda row: (row[1], row[0]), reverse=newest)
            del found[want:]
        docs = dict(
            self._rows(
                "SELECT idx, doc FROM events WHERE idx IN (SELECT value FROM json_each(?))",
                (orjson.dumps([index for index, _ in found]).decode(),),
            )
        )
        rows = [(index, ts, orjson.loads(docs[index])) for index, ts in found]
        return make_page(rows, limit, order)

    def count(self, q: Query) -> int:
        """How many events match `q`."""
        where, params = build_where(q, self._leaf, "?", paged=False)
        return int(self._rows(f"SELECT count(*) FROM events e{where}", params)[0][0])

    def histogram(self, q: Query, bucket: timedelta) -> list[tuple[datetime, int]]:
        """Counts per time bucket of `bucket` width, oldest first, empty buckets omitted."""
        width = bucket_micros(bucket)
        where, params = build_where(q, self._leaf, "?", paged=False)
        sql = f"SELECT (e.ts / ?) * ? AS b, count(*) FROM events e{where} GROUP BY b ORDER BY b"
        return [(from_micros(b), n) for b, n in self._rows(sql, [width, width, *params])]

    def top(self, field: str, q: Query, n: int = 10) -> list[tuple[str, int]]:
        """The `n` most frequent values of a hot field; ties by value (IPs by address)."""
        column = hot_field(field)
        if n < 1:
            raise QueryError(f"top needs n >= 1, not {n}")
        where, params = build_where(q, self._leaf, "?", paged=False)
        where += (" AND " if where else " WHERE ") + f"e.{column} IS NOT NULL"
        tie = "t.ip" if field == "source.ip" else "t.value"
        sql = (
            f"SELECT t.value, c.n FROM (SELECT e.{column} AS term, count(*) AS n FROM events e"
            f"{where} GROUP BY e.{column}) c JOIN terms t ON t.id = c.term "
            f"ORDER BY c.n DESC, {tie} LIMIT ?"
        )
        return [(value, count) for value, count in self._rows(sql, [*params, n])]

    def max_ledger_index(self) -> int | None:
        """The highest ledger index stored, None when empty."""
        with self._lock:
            return self._max

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
