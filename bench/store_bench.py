"""Index store designs compared: insert throughput and actor-timeline latency.

    python bench/store_bench.py [--events 1000000]
                                [--designs naive,actor,store,store-enc,duckdb,postgres]

Every design gets the same generated events (100k IPs, 20k users, 5k API keys) in batches of
500, does its own serialization, and answers the same timelines (newest 100 events of an
actor). `naive` is the baseline of the ratios: text columns with a (column, ts) index per
actor field. `store` is `apiwatch.store.sqlite.SqliteStore` as shipped; `store-enc` is the same
store handed the ECS JSON the collector already wrote to the ledger (`insert(batch, encoded=)`),
encoded before the clock starts. `cpu/s` is rows per second of this process's CPU time, the
steadier figure on a shared machine. For the SQLite store, a few filter queries on the
low-cardinality fields are timed as well (they have no index of their own; see docs/store.md),
and aggregates over a time range (`since` one second after the first event), which read the
`minutes` rollup or the minute cache (`apiwatch.store.rollup`): the first run, then the best of
three.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from apiwatch.events.model import Event, make_event
from apiwatch.formats.ecs import encode_ecs
from apiwatch.store._time import event_micros
from apiwatch.store.base import Query, Store
from apiwatch.store.sqlite import SqliteStore

BATCH = 500
START_S = 1_793_491_200  # 2026-11-01T00:00:00Z, the first event
ACTOR_FIELDS = {"ip": "source.ip", "user": "user.name", "key": "apiwatch.api_key.id"}
COLUMNS = ("source_ip", "user_name", "api_key_id", "action", "route", "tenant")
FIELDS = ("source.ip", "user.name", "apiwatch.api_key.id", "event.action", "apiwatch.route",
          "apiwatch.tenant")


def generate(n: int) -> list[tuple[int, Event]]:
    rng = random.Random(7)
    ips = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
           for _ in range(100_000)]
    start = START_S * 10**9
    step = 10 * 86_400 * 10**9 // n  # n events over ten days
    actions = ("authn_login_fail", "authn_login_success", "authz_fail", "input_validation_fail")
    return [
        (
            i,
            make_event(
                actions[i % 4],
                {
                    "source.ip": rng.choice(ips),
                    "user.name": f"user{rng.randrange(20_000)}",
                    "apiwatch.api_key.id": f"key{rng.randrange(5_000):05d}",
                    "apiwatch.route": f"/v1/r{rng.randrange(50)}/{{id}}",
                    "apiwatch.tenant": f"tenant{rng.randrange(20)}",
                    "apiwatch.source": "app-1",
                    "url.path": f"/v1/r/{rng.randrange(10**6)}",
                    "http.request.method": "POST",
                    "http.response.status_code": rng.choice((200, 401, 403, 422)),
                    "user_agent.original": "python-httpx/0.27",
                },
                timestamp_ns=start + i * step,
            ),
        )
        for i in range(n)
    ]


class SqlDesign:
    """A bare SQLite design for comparison: insert plus a newest-first actor timeline."""

    def __init__(self, path: Path, *, interned: bool) -> None:
        import sqlite3  # noqa: PLC0415

        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA cache_size=-65536")
        self.interned = interned
        kind = "INTEGER" if interned else "TEXT"
        cols = ", ".join(f"{c} {kind}" for c in COLUMNS)
        self.db.execute(f"CREATE TABLE events (idx INTEGER PRIMARY KEY, ts INTEGER, {cols}, doc)")
        self.db.execute("CREATE INDEX events_ts ON events (ts)")
        if interned:  # actor-first postings: the textbook inverted index
            self.db.execute(
                "CREATE TABLE postings (actor INTEGER, ts INTEGER, idx INTEGER, "
                "PRIMARY KEY (actor, ts, idx)) WITHOUT ROWID"
            )
            self.terms: dict[str, int] = {}
        else:
            for column in COLUMNS[:3]:
                self.db.execute(f"CREATE INDEX events_{column} ON events ({column}, ts)")

    def insert(self, batch: Sequence[tuple[int, Event]]) -> None:
        rows: list[tuple[Any, ...]] = []
        postings: list[tuple[int, int, int]] = []
        for index, event in batch:
            ts = event_micros(event["@timestamp"])
            values: list[Any] = [event.get(f) for f in FIELDS]
            if self.interned:
                values = [self.terms.setdefault(f"{n}:{v}", len(self.terms) + 1)
                          for n, v in enumerate(values)]
                postings += [(values[n], ts, index) for n in range(3)]
            rows.append((index, ts, *values, orjson.dumps(event).decode()))
        self.db.execute("BEGIN")
        self.db.executemany(f"INSERT INTO events VALUES ({', '.join('?' * 9)})", rows)
        if postings:
            postings.sort()
            self.db.executemany("INSERT INTO postings VALUES (?, ?, ?)", postings)
        self.db.execute("COMMIT")

    def timeline(self, kind: str, value: str) -> int:
        if self.interned:
            number = list(ACTOR_FIELDS).index(kind)
            sql = ("SELECT e.doc FROM postings p JOIN events e ON e.idx = p.idx WHERE p.actor = ? "
                   "ORDER BY p.ts DESC, p.idx DESC LIMIT 100")
            param: Any = self.terms.get(f"{number}:{value}")
        else:
            column = COLUMNS[list(ACTOR_FIELDS).index(kind)]
            sql = f"SELECT doc FROM events WHERE {column} = ? ORDER BY ts DESC, idx DESC LIMIT 100"
            param = value
        return len([orjson.loads(doc) for (doc,) in self.db.execute(sql, (param,))])


class DuckDesign:
    """DuckDB, the embedded columnar alternative: same columns, no secondary index."""

    def __init__(self, path: Path) -> None:
        import duckdb  # noqa: PLC0415

        self.db = duckdb.connect(str(path))
        cols = ", ".join(f"{c} VARCHAR" for c in COLUMNS)
        table = f"CREATE TABLE events (idx BIGINT PRIMARY KEY, ts BIGINT, {cols}, doc JSON)"
        self.db.execute(table)

    def insert(self, batch: Sequence[tuple[int, Event]]) -> None:
        rows = [
            (i, event_micros(e["@timestamp"]), *(e.get(f) for f in FIELDS),
             orjson.dumps(e).decode())
            for i, e in batch
        ]
        marks = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
        self.db.execute(f"INSERT INTO events VALUES {marks}", [v for row in rows for v in row])

    def timeline(self, kind: str, value: str) -> int:
        column = COLUMNS[list(ACTOR_FIELDS).index(kind)]
        sql = f"SELECT doc FROM events WHERE {column} = ? ORDER BY ts DESC, idx DESC LIMIT 100"
        return len([orjson.loads(doc) for (doc,) in self.db.execute(sql, [value]).fetchall()])


class StoreDesign:
    """A shipped backend behind the Store protocol."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def insert(self, batch: Sequence[tuple[int, Event]]) -> None:
        self.store.insert(batch)

    def prepare(self, batch: Sequence[tuple[int, Event]]) -> Sequence[tuple[int, Event]]:
        return batch

    def timeline(self, kind: str, value: str) -> int:
        return len(self.store.timeline(kind, value, limit=100).events)  # type: ignore[arg-type]


class EncodedStoreDesign(StoreDesign):
    """The SQLite store given each event's ledger JSON, as the collector can hand it over."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__(store)
        self.sqlite = store

    def prepare(self, batch: Sequence[tuple[int, Event]]) -> Any:
        return batch, [encode_ecs(event).rstrip(b"\n") for _, event in batch]

    def insert(self, prepared: Any) -> None:
        batch, encoded = prepared
        self.sqlite.insert(batch, encoded=encoded)



def postgres_design(dsn: str) -> StoreDesign:
    from apiwatch.store.postgres import PostgresStore  # noqa: PLC0415

    return StoreDesign(PostgresStore(dsn, schema=f"bench_{uuid.uuid4().hex[:8]}"))


#: Filters on low-cardinality fields, newest 100 / count over everything, for the SQLite store.
QUERIES = (
    ("newest 100, action (1 in 4)", "event.action:authz_fail"),
    ("newest 100, tenant (1 in 20)", "apiwatch.tenant:tenant7"),
    ("newest 100, absent route", 'apiwatch.route:"/v1/none"'),
)


def time_queries(store: Store) -> list[tuple[str, float, float]]:
    """Milliseconds (first run, best of 3) of each query in QUERIES and of aggregates."""
    timed: list[tuple[str, Callable[[], object]]] = [
        (label, functools.partial(store.query, Query.parse(text, limit=100)))
        for label, text in QUERIES
    ]
    timed.append(("count, action", functools.partial(store.count, Query.parse(QUERIES[0][1]))))
    since = datetime.fromtimestamp(START_S + 1, UTC)
    timed += [
        ("count, action, since", functools.partial(
            store.count, Query.parse(QUERIES[0][1], since=since))),
        ("histogram 1h, action, since", functools.partial(
            store.histogram, Query.parse(QUERIES[0][1], since=since), timedelta(hours=1))),
        ("top 10 IPs of failures, since", functools.partial(
            store.top, "source.ip", Query.parse("event.outcome:failure", since=since))),
    ]
    out = []
    for label, run in timed:
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            run()
            runs.append(time.perf_counter() - t0)
        out.append((label, runs[0] * 1000, min(runs) * 1000))
    return out


def measure(
    name: str, design: Any, events: list[tuple[int, Event]], probes: list[tuple[str, str]]
) -> dict[str, float]:
    batches = [events[at : at + BATCH] for at in range(0, len(events), BATCH)]
    prepared = [design.prepare(b) for b in batches] if hasattr(design, "prepare") else batches
    start, cpu = time.perf_counter(), time.process_time()
    for batch in prepared:
        design.insert(batch)
    if hasattr(design, "store"):
        design.store.max_ledger_index()  # commits what is pending: part of the insert cost
    rate = len(events) / (time.perf_counter() - start)
    cpu_rate = len(events) / (time.process_time() - cpu)
    latencies: dict[str, list[float]] = {kind: [] for kind in ACTOR_FIELDS}
    for kind, value in probes:
        t0 = time.perf_counter()
        assert design.timeline(kind, value) > 0, (name, kind, value)
        latencies[kind].append((time.perf_counter() - t0) * 1000)
    result = {"rate": rate, "cpu": cpu_rate}
    for kind, values in latencies.items():
        result[f"{kind}_p50"] = statistics.median(values)
        result[f"{kind}_max"] = max(values)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--designs", default="naive,actor,store,duckdb,postgres")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    t0 = time.perf_counter()
    events = generate(args.events)
    print(f"generated {args.events:,} events in {time.perf_counter() - t0:.1f} s")
    rng = random.Random(3)
    probes = [(kind, events[rng.randrange(len(events))][1][field])
              for kind, field in ACTOR_FIELDS.items() for _ in range(30)]
    tmp = Path(tempfile.mkdtemp(prefix="store_bench_"))
    makers: dict[str, Callable[[], Any]] = {
        "naive": lambda: SqlDesign(tmp / "naive.db", interned=False),
        "actor": lambda: SqlDesign(tmp / "actor.db", interned=True),
        "store": lambda: StoreDesign(SqliteStore(tmp / "store.db")),
        "store-enc": lambda: EncodedStoreDesign(SqliteStore(tmp / "store-enc.db")),
        "duckdb": lambda: DuckDesign(tmp / "duck.db"),
        "postgres": lambda: postgres_design(args.postgres),
    }
    results = {}
    queries: list[tuple[str, float, float]] = []
    for name in args.designs.split(","):
        design = makers[name]()
        results[name] = measure(name, design, events, probes)
        print(f"  {name}: {results[name]['rate']:,.0f} rows/s", flush=True)
        if name == "store":
            queries = time_queries(design.store)
    base = results.get("naive", next(iter(results.values())))
    print(f"\n{args.events:,} events, batches of {BATCH}; timeline = newest 100 of one actor (ms)")
    print(f"{'design':<9} {'rows/s':>9} {'cpu/s':>9} {'x base':>7}" + "".join(
        f" {k + ' p50':>9} {k + ' max':>9}" for k in ACTOR_FIELDS))
    for name, r in results.items():
        print(f"{name:<9} {r['rate']:>9,.0f} {r['cpu']:>9,.0f} {r['rate'] / base['rate']:>7.2f}"
              + "".join(f" {r[k + '_p50']:>9.2f} {r[k + '_max']:>9.2f}" for k in ACTOR_FIELDS))
    for label, first, best in queries:
        print(f"  store query: {label:<32} {first:>9.2f} ms first {best:>9.2f} ms best")
    print(f"(files in {tmp}; PostgreSQL bench schemas are left in place for inspection)")


if __name__ == "__main__":
    main()
