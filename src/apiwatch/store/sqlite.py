"""The embedded index store: SQLite (stdlib `sqlite3`), WAL, tuned for fast batch inserts.

Design (measured in `bench/store_bench.py`, explained in `docs/store.md`):

* `events` is keyed by the ledger index (the rowid), so appends go to the end of the B-tree.
  Hot keyword fields are interned into `terms` (small integer ids, cached in memory), which
  keeps rows and index entries short; an IPv4 source address is its own id instead
  (`sqlite_addresses`), so a new address costs no `terms` row. An absent field is id 0.
* The actor timeline (by source IP, user, API key) is served by `postings`, a WITHOUT ROWID
  table keyed (generation, actor, time, index), where a generation is 8192 consecutive ledger
  indexes. Keying by generation first keeps each batch's postings inside a small region of
  the B-tree, so a commit dirties a few hundred pages instead of one page per posting; an
  actor-first key touches pages all over the table and falls to a fifth of the speed.
  `gens` keeps each generation's time span, so a timeline visits the generations that
  overlap its range, newest first, and stops as soon as no later one can place in the page.
* The low-cardinality hot fields (action, outcome, route, tenant, source) are interned
  columns without an index of their own: four (column, ts) indexes cost a third of the
  insert rate, and a filter on them scans the time range in (ts) order instead.
* Commits: `synchronous=NORMAL` in WAL mode (a commit is not fsynced), and under load one
  transaction holds up to COMMIT_ROWS rows from several batches, committed at the latest
  COMMIT_SECONDS after it began (by a timer when no insert follows); the first batch after
  a quiet spell is committed at once. A crash or power loss can therefore
  drop the last uncommitted or unsynced rows, never corrupt the file. That is safe because
  the store is derived data: the ledger is durable before an event is acknowledged, and
  `max_ledger_index()` commits what is pending before it answers, so it only ever reports
  committed rows; recovery replays the ledger after it (inserts are idempotent). Queries use
  the same connection, so they see a batch as soon as `insert` returns.
* Checkpoints: the bulk in a thread of their own, the tail right after a commit
  (`sqlite_checkpoint`), so that no commit waits for a whole checkpoint's copy and fsync.
"""

# SQL here is assembled from fixed fragments and internal column names only; every value the
# user controls is a bound parameter (see the injection tests), so S608 does not apply.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import operator
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from ipaddress import IPv4Network
from itertools import chain, repeat
from pathlib import Path
from typing import Any

import orjson

from apiwatch.events.fields import FieldType, field_type
from apiwatch.events.ipaddr import canonical_text, packed_ip
from apiwatch.events.model import Event
from apiwatch.store import rollup, sqlite_rollup
from apiwatch.store._time import to_micros
from apiwatch.store.base import (
    HOT,
    ActorKind,
    Order,
    Page,
    Query,
    bucket_micros,
    build_where,
    check_limit,
    decode_cursor,
    make_page,
    new_rows,
    order_by,
    stamped_and_stored,
    timeline_value,
)
from apiwatch.store.errors import StoreError
from apiwatch.store.minute_cache import MinuteCache
from apiwatch.store.query import Cidr, IPNetwork, Leaf, Range, Term, Wildcard
from apiwatch.store.records import record_columns
from apiwatch.store.sqlite_addresses import address_id, v4_range, v4_text
from apiwatch.store.sqlite_checkpoint import SAFETY_PAGES, Checkpointer

_native_v4_ids: Callable[[list[Any]], list[int]] | None
try:
    from apiwatch.store._hot_columns import v4_ids as _native_v4_ids
except ImportError:  # built without a C compiler: every address is looked up, as IPv6 is
    _native_v4_ids = None

GEN_BITS = 13  # 8192 ledger indexes per generation; see the module docstring
#: A transaction is committed once it holds this many rows, or by an insert this many
#: seconds after the last commit, or by a timer this many seconds after it began; see
#: "Commits" in the module docstring.
COMMIT_ROWS = 4000
COMMIT_SECONDS = 0.5
#: Interned hot fields and the id of each in `terms.field`; the first three are actors.
_FIELD_IDS = {field: number for number, field in enumerate(HOT, 1)}
_SOURCE_IP = 0  # position of source.ip in HOT; positions 0-2 are the actors
_ADDRESS_FIELD = _SOURCE_IP + 1  # its number in `terms.field`
_PAGE_SIZE = 16384
_MAX_PROBE_RUN = 256  # generations probed by one timeline statement at most
_NewTerm = tuple[int, int, str]  # a row of `terms` (id, field, value) other than an address's
_NewAddress = tuple[int, int, str, bytearray]  # a source.ip row of `terms`: ..., its ip key
#: The id stored for a hot field that is absent, not a string, or not a valid address: no term
#: has it. Not NULL: sqlite3 binds a None (or bytes) parameter only after a failed adapter
#: lookup that raises and clears an AttributeError, ~2,000 instructions each (callgrind).
_ABSENT = 0
_NewTerms = tuple[list[_NewTerm], list[_NewAddress]]  # a batch's new rows of `terms`
_Posting = tuple[int, int, int, int]  # a row of `postings`: generation, actor, time, index
_HOT_FIELDS = tuple(HOT)
_RECORD_FIELDS = ("@timestamp", *_HOT_FIELDS)  # what `insert_records` reads of a record
_actor_of = operator.itemgetter(1)
_LOW, _HIGH = -(2**63), 2**63 - 1

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS terms (
    id INTEGER PRIMARY KEY, field INTEGER NOT NULL, value TEXT NOT NULL, ip BLOB,
    UNIQUE (field, value));
CREATE INDEX IF NOT EXISTS terms_ip ON terms (field, ip) WHERE ip IS NOT NULL;
-- The hot columns hold term ids, _ABSENT (0) for no term (rows written before: NULL).
CREATE TABLE IF NOT EXISTS events (
    idx INTEGER PRIMARY KEY, ts INTEGER NOT NULL,
    {", ".join(f"{column} INTEGER" for column in HOT.values())},
    doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
-- The first version's low-cardinality indexes: gone from stores it made (docs/store.md).
DROP INDEX IF EXISTS events_action;
DROP INDEX IF EXISTS events_route;
DROP INDEX IF EXISTS events_tenant;
DROP INDEX IF EXISTS events_source;
CREATE TABLE IF NOT EXISTS postings (
    gen INTEGER NOT NULL, actor INTEGER NOT NULL, ts INTEGER NOT NULL, idx INTEGER NOT NULL,
    PRIMARY KEY (gen, actor, ts, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gens (
    gen INTEGER PRIMARY KEY, min_ts INTEGER NOT NULL, max_ts INTEGER NOT NULL);
"""
_INSERT_EVENT = f"INSERT OR IGNORE INTO events VALUES ({', '.join('?' * (len(HOT) + 3))})"
_UPSERT_GEN = """INSERT INTO gens VALUES (?, ?, ?) ON CONFLICT (gen) DO UPDATE SET
    min_ts = min(min_ts, excluded.min_ts), max_ts = max(max_ts, excluded.max_ts)"""


def _pick(column: list[Any], positions: list[int]) -> list[Any]:
    return list(map(column.__getitem__, positions))


def ip_key(address: object) -> bytes | None:
    """A sortable key of an IP address: version byte, then the packed address.

    Comparing keys orders IPv4 before IPv6 and never mixes the families, as PostgreSQL's
    `inet` does, so a CIDR test is a BETWEEN on keys.
    """
    return packed_ip(address) if isinstance(address, str) else None


def _network_keys(network: IPNetwork) -> tuple[bytes, bytes]:
    version = bytes([network.version])
    return version + network.network_address.packed, version + network.broadcast_address.packed


def _glob(pattern: str) -> str:
    """The GLOB pattern of a query wildcard: `*` and `?` stay, a `[` becomes literal."""
    return pattern.replace("[", "[[]")


def _interned_leaf(
    column: str, number: int, node: Term | Wildcard | Cidr
) -> tuple[str, list[Any]]:
    """SQL for a term on hot field `number` by the ids its values have in `terms`."""
    if isinstance(node, Term):
        return f"{column} = (SELECT id FROM terms WHERE field = ? AND value = ?)", [
            number,
            node.value,
        ]
    if isinstance(node, Wildcard):
        sql = f"{column} IN (SELECT id FROM terms WHERE field = ? AND value GLOB ?)"
        return sql, [number, _glob(node.pattern)]
    sql = f"{column} IN (SELECT id FROM terms WHERE field = ? AND ip BETWEEN ? AND ?)"
    return sql, [number, *_network_keys(node.network)]


def _address_leaf(column: str, node: Term | Wildcard | Cidr) -> tuple[str, list[Any]] | None:
    """SQL for a term on source.ip by the IPv4 ids computed from addresses
    (`sqlite_addresses`), None if no such id can match."""
    if isinstance(node, Term):
        term = address_id(node.value) if isinstance(node.value, str) else None
        return None if term is None else (f"{column} = ?", [term])
    if isinstance(node, Wildcard):
        return f"({column} < 0 AND {v4_text(column)} GLOB ?)", [_glob(node.pattern)]
    if isinstance(node.network, IPv4Network):
        return f"{column} BETWEEN ? AND ?", list(v4_range(node.network))
    return None


class SqliteStore:
    """The `Store` on one SQLite file; safe to share between threads (one lock)."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # Before the first table exists, so only a new file takes it: 16 KiB pages hold ~25
            # events each instead of 6, which halves the B-tree work of an insert (measured).
            self._db.execute(f"PRAGMA page_size={_PAGE_SIZE}")
            (mode,) = self._db.execute("PRAGMA journal_mode=WAL").fetchone()
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA cache_size=-65536")  # 64 MiB: the hot generation's pages
            # Checkpoints run in a thread of their own (`sqlite_checkpoint`); the writer's own
            # is the safety net.
            self._db.execute(f"PRAGMA wal_autocheckpoint={SAFETY_PAGES}")
            self._db.create_function("aw_ip", 1, ip_key, deterministic=True)
            self._db.executescript(_SCHEMA)
            sqlite_rollup.create(self._db)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {path}: {exc}") from exc
        # An in-memory database has no log to checkpoint.
        self._checkpoints = Checkpointer(path) if mode == "wal" else None
        self._lock = threading.Lock()
        # The open transaction is committed by this time.monotonic() at the latest, by a
        # thread started with the first transaction (one thread, not a timer per commit).
        self._deadline: float | None = None
        self._wake = threading.Condition(self._lock)
        self._committer: threading.Thread | None = None
        self._failed: StoreError | None = None
        self._closed = False
        self._pending = 0  # rows inserted but not committed
        self._committed_at = -COMMIT_SECONDS  # time.monotonic() of the last commit
        self._max: int | None = None
        self._counts = sqlite_rollup.Counts(self._rows, self._leaf)
        self._cache = MinuteCache()
        self._resync()

    def _load_terms(self) -> None:
        """Read the dictionary into memory, where inserts resolve every term.

        One process owns the store (the collector's lock), so the in-memory dictionary is
        authoritative; it is reloaded after a failed insert to drop the ids it had handed out.
        Beside the stored (canonical) values it learns raw IP spellings as they arrive.
        """
        self._ids: tuple[dict[str, int], ...] = tuple({} for _ in HOT)
        last = 0
        for term, field, value in self._db.execute("SELECT id, field, value FROM terms"):
            self._ids[field - 1][value] = term
            last = max(last, term)
        self._next_term = last + 1
        # IPv4 addresses get computed ids in C, unlooked-up and unremembered (the dictionary
        # would grow by every new address), unless the store interned some before that scheme:
        # those keep their rows' ids, so every address is looked up then.
        self._v4_ids = None if _native_v4_ids is None or any(
            map(address_id, self._ids[_SOURCE_IP])
        ) else _native_v4_ids

    def _resolve(
        self, position: int, values: list[Any], ids: list[int], new: _NewTerms
    ) -> None:
        """Complete `ids` (the `values` of hot field number `position` looked up, _ABSENT
        where the lookup missed) with the ids of strings seen for the first time, interned
        into `new`."""
        known = self._ids[position]
        for row, value in enumerate(values):
            if ids[row] == _ABSENT and type(value) is str:
                term = known.get(value)  # _ABSENT if an invalid address
                ids[row] = self._intern(position, value, new) if term is None else term

    def _intern(
        self, position: int, value: str, new: _NewTerms
    ) -> int:
        """A new id for `value` of hot field number `position`, queued in `new` for `terms`."""
        ids = self._ids[position]
        term = self._next_term
        if position != _SOURCE_IP:
            new[0].append((term, position + 1, value))
        else:
            computed = address_id(value)
            if computed is not None:  # IPv4: no `terms` row, see sqlite_addresses
                ids[value] = computed
                return computed
            key = packed_ip(value)
            if key is None:
                ids[value] = _ABSENT  # parsed once
                return _ABSENT
            text = canonical_text(key)
            known = ids.get(text)
            if known is not None:  # another spelling of a known address
                ids[value] = known
                return known
            ids[text] = term
            new[1].append((term, position + 1, text, bytearray(key)))  # bytearray: see _ABSENT
        ids[value] = term
        self._next_term += 1
        return term

    def insert(
        self, batch: Sequence[tuple[int, Event]], encoded: Sequence[bytes] | None = None
    ) -> None:
        """Store a batch; ledger indexes already stored are skipped.

        `encoded`, when given, holds each event's JSON as the ledger recorded it (same order
        as `batch`); it is stored as is instead of encoding the event again. The batch is
        visible to queries on return and committed within COMMIT_SECONDS (see "Commits").
        """
        if encoded is not None and len(encoded) != len(batch):
            raise StoreError("insert needs one encoded document per event of the batch")
        with self._lock:
            self._raise_failure()
            rows = new_rows(batch, self._max, self._existing)
            if not rows:
                return
            indexes, stamps, events = (list(column) for column in zip(*rows, strict=True))
            if encoded is not None:
                # Reversed so that the first of repeated indexes wins, as in new_rows.
                docs = dict(zip(reversed([i for i, _ in batch]), reversed(encoded), strict=True))
                texts = list(map(bytes.decode, map(docs.__getitem__, indexes)))
            else:
                texts = list(map(bytes.decode, map(orjson.dumps, events)))
            values = [list(map(dict.get, events, repeat(field))) for field in _HOT_FIELDS]
            self._add(indexes, stamps, values, texts)

    def insert_records(self, first: int, records: Sequence[bytes]) -> None:
        """`insert` of ledger records `first`, `first + 1`, ... as the ledger holds them (JSON
        objects): the time and the hot fields are read from the bytes (`store.records`),
        no event is decoded. StoreError if a record is not a JSON object."""
        if not records:
            return
        columns = record_columns(list(records), _RECORD_FIELDS)
        indexes = list(range(first, first + len(records)))
        with self._lock:
            self._raise_failure()
            micros, stored = stamped_and_stored(indexes, columns[0], self._max, self._existing)
            texts = list(map(bytes.decode, records))
            values = columns[1:]
            if stored:
                keep = [position for position, index in enumerate(indexes) if index not in stored]
                if not keep:
                    return
                indexes, micros = _pick(indexes, keep), _pick(micros, keep)
                texts, values = _pick(texts, keep), [_pick(column, keep) for column in values]
            self._add(indexes, micros, values, texts)

    def _raise_failure(self) -> None:
        """Raise the failure of a commit the timer made, once."""
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise failed

    def _add(
        self, indexes: list[int], stamps: list[int], values: list[list[Any]], texts: list[str]
    ) -> None:
        """Write new rows to the open transaction: their ledger indexes, times (µs), the
        values of each hot field (a list per field, in HOT's order) and their documents."""
        self._write(*self._prepare(indexes, stamps, values, texts))
        self._pending += len(indexes)
        top = max(indexes)
        self._max = top if self._max is None else max(self._max, top)
        # Under load, batches arrive well within COMMIT_SECONDS of the last commit and are
        # grouped; the first batch after a quiet spell is committed at once, so another
        # process (`apiwatch export`) sees it without waiting for the timer.
        if (
            self._pending >= COMMIT_ROWS
            or time.monotonic() - self._committed_at >= COMMIT_SECONDS
        ):
            self._commit()

    def _prepare(
        self, indexes: list[int], stamps: list[int], values: list[list[Any]], texts: list[str]
    ) -> tuple[
        _NewTerms,
        list[tuple[Any, ...]],
        list[_Posting],
        list[tuple[int, int, int]],
    ]:
        """The rows of `terms`, `events`, `postings` and `gens` a batch adds (`_add`).

        Column by column, each in a few C-level calls: a loop over the rows in Python costs
        twice as much (`bench/index_instructions.py`).
        """
        new_terms: _NewTerms = ([], [])
        columns: list[list[int]] = []
        for position, column in enumerate(values):
            lookup = self._ids[position]
            try:
                if position == _SOURCE_IP and self._v4_ids is not None:
                    ids = self._v4_ids(column)  # IPv6 and other spellings: _ABSENT, resolved
                else:
                    ids = list(map(lookup.get, column, repeat(_ABSENT)))
            except TypeError:  # unhashable (a list)
                ids = [_ABSENT] * len(column)
            if ids.count(_ABSENT) != column.count(None):  # new, or not a string, or invalid
                self._resolve(position, column, ids, new_terms)
            columns.append(ids)
        gens = [index >> GEN_BITS for index in indexes]
        # B-tree order by actor (stable, so each actor's rows stay in ledger order): the
        # batch's postings go into its generation's pages one neighbour after another.
        # An int key sorts ~7x faster than comparing the 4-tuples.
        postings: list[_Posting] = sorted(
            chain.from_iterable(
                filter(_actor_of, zip(gens, actors, stamps, indexes, strict=True))
                for actors in columns[:3]
            ),
            key=_actor_of,
        )
        if min(gens) == max(gens):  # one generation, as nearly every batch
            spans = [(gens[0], min(stamps), max(stamps))]
        else:
            bounds: dict[int, tuple[int, int]] = {}
            for gen, ts in zip(gens, stamps, strict=True):
                low, high = bounds.get(gen, (ts, ts))
                bounds[gen] = (min(low, ts), max(high, ts))
            spans = [(gen, low, high) for gen, (low, high) in bounds.items()]
        event_rows: list[tuple[Any, ...]] = list(
            zip(indexes, stamps, *columns, texts, strict=True)
        )
        return new_terms, event_rows, postings, spans

    def _write(
        self,
        new_terms: _NewTerms,
        event_rows: list[tuple[Any, ...]],
        postings: list[_Posting],
        spans: list[tuple[int, int, int]],
    ) -> None:
        """Add a batch's rows to the open transaction, begun if none.

        On failure the whole transaction is rolled back, earlier uncommitted batches too: a
        savepoint per batch would keep them, but costs ~10% (every page written again goes to
        the statement journal first), and the errors possible here are storage failures,
        after which SQLite often rolls back the whole transaction anyway.
        """
        try:
            if not self._db.in_transaction:
                self._begin()
            terms, addresses = new_terms
            self._db.executemany("INSERT INTO terms (id, field, value) VALUES (?, ?, ?)", terms)
            self._db.executemany("INSERT INTO terms VALUES (?, ?, ?, ?)", addresses)
            self._db.executemany(_INSERT_EVENT, event_rows)
            self._db.executemany("INSERT INTO postings VALUES (?, ?, ?, ?)", postings)
            self._db.executemany(_UPSERT_GEN, spans)
            sqlite_rollup.add(self._db, event_rows)
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            self._resync()
            raise StoreError(f"SQLite insert failed: {exc}") from exc

    def _begin(self) -> None:
        self._db.execute("BEGIN")
        # Commits the tail of a burst that no later insert will: the store never holds rows
        # uncommitted for much longer than COMMIT_SECONDS.
        self._deadline = time.monotonic() + COMMIT_SECONDS
        if self._committer is None:
            self._committer = threading.Thread(
                target=self._commit_loop, name="apiwatch-store-commit", daemon=True
            )
            self._committer.start()

    def _commit(self) -> None:
        """Commit the open transaction; StoreError if that fails (its rows are then lost)."""
        self._deadline = None
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            self._resync()
            raise StoreError(f"SQLite commit failed: {exc}") from exc
        if self._checkpoints is not None:
            self._checkpoints.committed(self._pending, self._db)
        self._pending = 0
        self._committed_at = time.monotonic()

    def _commit_loop(self) -> None:
        """Commit each transaction still open at its deadline, until the store closes.

        Wakes at least every COMMIT_SECONDS, so a transaction begun meanwhile needs no signal
        (which would cost a thread switch per transaction)."""
        with self._lock:
            while not self._closed:
                delay = COMMIT_SECONDS if self._deadline is None else (
                    self._deadline - time.monotonic()
                )
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                self._deadline = None
                if self._db.in_transaction:
                    try:
                        self._commit()
                    except StoreError as exc:
                        self._failed = exc  # raised by the next insert: nobody waits here

    def _resync(self) -> None:
        """Forget what was not committed: the dictionary and the highest index stored."""
        self._deadline = None
        self._pending = 0
        self._load_terms()
        self._max = self._db.execute("SELECT max(idx) FROM events").fetchone()[0]

    def _existing(self, indexes: list[int]) -> list[int]:
        sql = "SELECT idx FROM events WHERE idx IN (SELECT value FROM json_each(?))"
        return [row[0] for row in self._db.execute(sql, (orjson.dumps(indexes).decode(),))]

    def _leaf(self, node: Leaf) -> tuple[str, list[Any]]:
        """SQL for one term: hot fields by their interned column, others from the JSON."""
        if isinstance(node, Range) and node.field == "@timestamp":
            return f"e.ts {node.op.value} ?", [node.value]
        number = _FIELD_IDS.get(node.field)
        if number is not None and not isinstance(node, Range):
            column = f"e.{HOT[node.field]}"
            sql, params = _interned_leaf(column, number, node)
            computed = _address_leaf(column, node) if number == _ADDRESS_FIELD else None
            if computed is None:
                return sql, params
            return f"({sql} OR {computed[0]})", [*params, *computed[1]]
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
        # From the table, not the in-memory dictionary: another process may be the writer
        # (`apiwatch.collector.indexer`).
        known = self._rows(
            "SELECT id FROM terms WHERE field = ? AND value = ?", (_FIELD_IDS[field], stored)
        )
        actor = known[0][0] if known else address_id(stored) if actor_kind == "ip" else None
        if actor is None:
            return Page([], None)
        spans = self._rows(
            "SELECT gen, min_ts, max_ts FROM gens WHERE max_ts >= ? AND min_ts < ? ORDER BY "
            + ("max_ts DESC" if newest else "min_ts ASC"),
            (low, high),
        )
        comparison, direction = ("<", "DESC") if newest else (">", "ASC")
        probe = (
            "SELECT idx, ts FROM postings WHERE gen IN ({gens}) AND actor = ? AND ts >= ? "
            f"AND ts < ? AND (ts, idx) {comparison} (?, ?) "
            f"ORDER BY ts {direction}, idx {direction} LIMIT ?"
        )
        want = limit + 1
        found: list[tuple[int, int]] = []  # (index, ts)
        # Generations are probed in runs that double in length: an active actor fills the page
        # from the first one or two, a rare one (a few events over months: a thousand
        # generations to look at) costs a dozen statements instead of one per generation.
        position, run = 0, 1
        while position < len(spans):
            _, gen_low, gen_high = spans[position]
            if len(found) >= want:
                # Later generations start no later (newest) / no earlier (oldest) than this
                # one; once this one cannot place, none can.
                last = found[-1][1]
                if (gen_high < last) if newest else (gen_low > last):
                    break
            gens = [gen for gen, _, _ in spans[position : position + run]]
            position += run
            run = min(run * 2, _MAX_PROBE_RUN)
            found.extend(self._rows(
                probe.format(gens=", ".join("?" * len(gens))),
                (*gens, actor, low, high, *after, want),
            ))
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
        """How many events match `q` (whole minutes from `apiwatch.store.rollup`)."""
        return rollup.count(self._counts, self._cache, q)

    def histogram(self, q: Query, bucket: timedelta) -> list[tuple[datetime, int]]:
        """Counts per time bucket of `bucket` width, oldest first, empty buckets omitted."""
        return rollup.histogram(self._counts, self._cache, q, bucket_micros(bucket))

    def top(self, field: str, q: Query, n: int = 10) -> list[tuple[str, int]]:
        """The `n` most frequent values of a hot field; ties by value (IPs by address)."""
        return rollup.top(self._counts, self._cache, field, q, n)

    def max_ledger_index(self) -> int | None:
        """The highest ledger index stored and committed, None when empty.

        Commits what is pending first, so that the answer is durable: recovery replays the
        ledger from the index after it.
        """
        with self._lock:
            if self._db.in_transaction:
                try:
                    self._commit()
                except StoreError as exc:
                    # The caller (a metrics read, say) is not the writer, who must learn that
                    # the rows it inserted are gone: the next insert raises it too, as when
                    # the timer's commit fails.
                    self._failed = exc
                    raise
            # Read, not remembered: another process may be the writer.
            top: int | None = self._db.execute("SELECT max(idx) FROM events").fetchone()[0]
            return top

    def close(self) -> None:
        """Commit what is pending and close the database."""
        with self._lock:
            if self._closed:  # closing twice is allowed, as for a sqlite3 connection
                return
            try:
                if self._db.in_transaction:
                    self._commit()
            finally:
                self._closed = True
                self._wake.notify()
                if self._checkpoints is not None:
                    self._checkpoints.close()
                self._db.close()
