"""The scale-out index store: PostgreSQL via psycopg 3, partitioned by day on event time.

`events` is declaratively partitioned by RANGE on `ts` (epoch microseconds); a day's partition
is created the first time a batch holds an event of that day. Hot fields are plain columns
(`source_ip` is `inet`) with (column, ts, idx) B-tree indexes, declared once on the parent so
every partition gets them; the event is JSONB. Batches go through COPY into a temporary table
and one INSERT ... ON CONFLICT DO NOTHING, so a replayed batch is a no-op.

Results are identical to the SQLite backend for the same data and queries (the shared test
suite runs both); JSONB does not keep key order, so returned events compare equal as dicts.
"""

# SQL here is assembled from fixed fragments and internal column names only; every value the
# user controls is a bound parameter (see the injection tests), so S608 does not apply.
# ruff: noqa: S608

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import set_json_loads

from apiwatch.events.fields import FieldType, field_type
from apiwatch.events.model import Event
from apiwatch.store import postgres_rollup, rollup
from apiwatch.store._time import from_micros
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
    make_page,
    new_rows,
    order_by,
    timeline_value,
)
from apiwatch.store.errors import StoreError
from apiwatch.store.minute_cache import MinuteCache
from apiwatch.store.query import Cidr, Leaf, Node, Range, Term, Wildcard
from apiwatch.store.records import decode_record

_DAY = 86_400_000_000
_COLUMNS = ("idx", "ts", *HOT.values(), "doc")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    idx bigint NOT NULL, ts bigint NOT NULL, source_ip inet,
    user_name text, api_key_id text, action text, outcome text, route text, tenant text,
    source text, doc jsonb NOT NULL,
    PRIMARY KEY (idx, ts)) PARTITION BY RANGE (ts);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts, idx);
{indexes}
CREATE OR REPLACE FUNCTION aw_inet(value text) RETURNS inet LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF position('/' in value) > 0 THEN RETURN NULL; END IF;
    RETURN value::inet;
EXCEPTION WHEN others THEN RETURN NULL;
END $$;
"""
_INDEXES = "\n".join(
    f"CREATE INDEX IF NOT EXISTS events_{column} ON events ({column}, ts, idx);"
    for column in HOT.values()
)


def _like(pattern: str) -> str:
    """The LIKE pattern of a query wildcard (backslash is LIKE's default escape)."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _leaf(node: Leaf) -> tuple[str, list[Any]]:
    """SQL for one term: hot fields by their column, others from the JSONB document."""
    if isinstance(node, Range) and node.field == "@timestamp":
        return f"e.ts {node.op.value} %s", [node.value]
    column = HOT.get(node.field)
    if column is not None:
        if isinstance(node, Term):
            return f"e.{column} = %s", [node.value]
        if isinstance(node, Wildcard):
            return f"e.{column} LIKE %s", [_like(node.pattern)]
        if isinstance(node, Cidr) and node.network.prefixlen == node.network.max_prefixlen:
            # One address: equality uses the B-tree index directly.
            return f"e.{column} = %s::inet", [str(node.network.network_address)]
        if isinstance(node, Cidr):
            return f"e.{column} <<= %s::cidr", [str(node.network)]
    name = node.field
    kind = field_type(name)
    if kind is FieldType.KEYWORDS:
        if isinstance(node, Wildcard):
            sql_text = (
                "(CASE WHEN jsonb_typeof(e.doc -> %s) = 'array' THEN EXISTS (SELECT 1 FROM "
                "jsonb_array_elements(e.doc -> %s) v WHERE jsonb_typeof(v) = 'string' "
                "AND v #>> '{}' LIKE %s) ELSE false END)"
            )
            return sql_text, [name, name, _like(node.pattern)]
        value = node.value if isinstance(node, Term) else None
        return "(e.doc -> %s) @> jsonb_build_array(%s::text)", [name, value]
    if isinstance(node, Cidr):
        sql_text = (
            "(CASE WHEN jsonb_typeof(e.doc -> %s) = 'string' THEN aw_inet(e.doc ->> %s) END)"
            " <<= %s::cidr"
        )
        return sql_text, [name, name, str(node.network)]
    if isinstance(node, Wildcard):
        sql_text = "(jsonb_typeof(e.doc -> %s) = 'string' AND e.doc ->> %s LIKE %s)"
        return sql_text, [name, name, _like(node.pattern)]
    if isinstance(node, Term) and isinstance(node.value, bool):
        return "e.doc -> %s = %s::jsonb", [name, "true" if node.value else "false"]
    if isinstance(node, Term) and isinstance(node.value, str):
        return "e.doc -> %s = to_jsonb(%s::text)", [name, node.value]
    operator = "=" if isinstance(node, Term) else node.op.value
    sql_text = (
        "(CASE WHEN jsonb_typeof(e.doc -> %s) = 'number' THEN (e.doc ->> %s)::numeric END)"
        f" {operator} %s"
    )
    return sql_text, [name, name, node.value]


class PostgresStore:
    """The `Store` on PostgreSQL, in `schema` (created if missing); one connection, one lock."""

    def __init__(self, dsn: str, *, schema: str = "apiwatch") -> None:
        try:
            self._conn = psycopg.connect(dsn, autocommit=True)
            set_json_loads(orjson.loads, self._conn)
            name = sql.Identifier(schema)
            self._conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
            self._conn.execute(sql.SQL("SET search_path TO {}").format(name))
            with self._conn.transaction():
                self._conn.execute(_SCHEMA.format(indexes=_INDEXES).encode())
                postgres_rollup.create(self._conn)
            self._conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS staging (LIKE events) ON COMMIT DELETE ROWS"
            )
            self._partitions = self._known_partitions()
            row = self._conn.execute("SELECT max(idx) FROM events").fetchone()
            self._max: int | None = None if row is None else row[0]
        except psycopg.Error as exc:
            raise StoreError(f"cannot open PostgreSQL store: {exc}") from exc
        self._lock = threading.Lock()
        self._counts = postgres_rollup.Counts(self._rows, _leaf)
        self._cache = MinuteCache()

    def _partition(self, day: int) -> None:
        """Create the partition holding `day` (days since the epoch) unless it exists."""
        name = "events_" + from_micros(day * _DAY).strftime("%Y%m%d")
        if name in self._partitions:
            return
        self._conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ({}) TO ({})"
            ).format(sql.Identifier(name), sql.Literal(day * _DAY), sql.Literal((day + 1) * _DAY))
        )
        self._partitions.add(name)

    def insert(
        self, batch: Sequence[tuple[int, Event]], encoded: Sequence[bytes] | None = None
    ) -> None:
        """Store a batch in one transaction; ledger indexes already stored are skipped.

        `encoded` (each event's JSON as the ledger holds it) saves encoding the event again.
        """
        if encoded is not None and len(encoded) != len(batch):
            raise StoreError("insert needs one encoded document per event of the batch")
        documents = dict(zip((i for i, _ in batch), encoded, strict=True)) if encoded else {}
        with self._lock:
            rows = new_rows(batch, self._max, self._existing)
            if not rows:
                return
            records = []
            for index, ts, event in rows:
                address = canonical_ip(event.get("source.ip"))
                hot = [event.get(field) for field in list(HOT)[1:]]
                records.append(
                    (
                        index,
                        ts,
                        None if address is None else str(address),
                        *(value if isinstance(value, str) else None for value in hot),
                        (documents.get(index) or orjson.dumps(event)).decode(),
                    )
                )
            try:
                with self._conn.transaction():
                    for day in {ts // _DAY for _, ts, _ in rows}:
                        self._partition(day)
                    with self._conn.cursor().copy(
                        sql.SQL("COPY staging ({}) FROM STDIN").format(
                            sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
                        )
                    ) as copy:
                        for record in records:
                            copy.write_row(record)
                    self._conn.execute(postgres_rollup.MOVE.encode())
            except psycopg.Error as exc:
                self._partitions.clear()  # a rolled-back CREATE leaves no partition behind
                self._partitions.update(self._known_partitions())
                raise StoreError(f"PostgreSQL insert failed: {exc}") from exc
            top = max(index for index, _, _ in rows)
            self._max = top if self._max is None else max(self._max, top)

    def insert_records(self, first: int, records: Sequence[bytes]) -> None:
        """`insert` of ledger records `first`, `first + 1`, ... (JSON objects), decoded."""
        events = list(map(decode_record, records))
        self.insert(list(enumerate(events, start=first)), encoded=records)

    def _known_partitions(self) -> set[str]:
        query = (
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'events'::regclass"
        )
        return {row[0] for row in self._conn.execute(query)}

    def _existing(self, indexes: list[int]) -> list[int]:
        query = "SELECT idx FROM events WHERE idx = ANY(%s)"
        return [row[0] for row in self._conn.execute(query, (indexes,))]

    def _rows(self, query: str, params: Sequence[Any]) -> list[Any]:
        try:
            with self._lock:
                return self._conn.execute(query.encode(), params).fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL query failed: {exc}") from exc

    def query(self, q: Query) -> Page:
        """Events matching `q`, one page at a time."""
        check_limit(q.limit)
        where, params = build_where(q, _leaf, "%s", paged=True)
        query = f"SELECT e.idx, e.ts, e.doc FROM events e{where}{order_by(q.order)} LIMIT %s"
        return make_page(self._rows(query, [*params, q.limit + 1]), q.limit, q.order)

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
        """Events of one actor: a query on its indexed column."""
        field, stored = timeline_value(actor_kind, value)
        where: Node = Term(field, stored)
        if field == "source.ip":
            where = Cidr(field, ipaddress.ip_network(stored))
        return self.query(Query(where, since, until, order, limit, cursor))

    def count(self, q: Query) -> int:
        """How many events match `q` (whole minutes from `apiwatch.store.rollup`)."""
        return rollup.count(self._counts, self._cache, q)

    def histogram(self, q: Query, bucket: timedelta) -> list[tuple[datetime, int]]:
        """Counts per time bucket of `bucket` width, oldest first, empty buckets omitted."""
        return rollup.histogram(self._counts, self._cache, q, bucket_micros(bucket))

    def top(self, field: str, q: Query, n: int = 10) -> list[tuple[str, int]]:
        """The `n` most frequent values of a hot field; ties by value (IPs by address)."""
        return rollup.top(self._counts, self._cache, field, q, n)

    def clear(self) -> None:
        """Delete every stored event in one transaction, for `apiwatch reindex` to refill.

        TRUNCATE on the partitioned parent empties every partition (and their indexes) at
        once and is transactional in PostgreSQL: a failure leaves the store as it was. The
        partitions themselves stay, empty, so the partition cache remains true.
        """
        with self._lock:
            try:
                with self._conn.transaction():
                    self._conn.execute("TRUNCATE events, minutes")
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL clear failed: {exc}") from exc
            self._max = None
            self._cache = MinuteCache()  # what it kept was counted from the events gone

    def max_ledger_index(self) -> int | None:
        """The highest ledger index stored, None when empty."""
        with self._lock:
            # Read, not remembered: another process may be the writer.
            row = self._conn.execute("SELECT max(idx) FROM events").fetchone()
            return None if row is None else row[0]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
