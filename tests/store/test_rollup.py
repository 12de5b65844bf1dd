"""Aggregates over a time range read per-minute counts, and always equal the events.

Run on SQLite and PostgreSQL alike; the expected numbers are computed from the events in
Python, so a rollup that drifted from the events (double counted, missed, stale) fails.
"""

from __future__ import annotations

import ipaddress
import random
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql
from store_data import POSTGRES_DSN

from apiwatch.events.model import Event, make_event
from apiwatch.store import Query, Store, rollup, sqlite_rollup
from apiwatch.store.base import HOT
from apiwatch.store.minute_cache import MinuteCache
from apiwatch.store.postgres import PostgresStore
from apiwatch.store.sqlite import SqliteStore

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
T0_US = int(T0.timestamp()) * 1_000_000
ACTIONS = ("authn_login_fail", "authn_login_success", "authz_fail", "data_access")
#: Fields whose top lists come from the minute cache (the rollup groups action and outcome).
ACTORS = ("source.ip", "user.name", "apiwatch.api_key.id", "apiwatch.route")


def _event(rng: random.Random, i: int) -> Event:
    fields: dict[str, object] = {
        "source.ip": rng.choice(["10.0.0.1", "10.0.0.2", "2001:db8::1", "192.0.2.9"]),
        "apiwatch.route": rng.choice(["/v1/login", "/v1/items/{id}"]),
    }
    if rng.random() < 0.8:
        fields["user.name"] = rng.choice(["alice", "bob", "Admin", "é"])
    if rng.random() < 0.3:
        fields["apiwatch.api_key.id"] = rng.choice(["key0", "key1"])
    stamp = T0 + timedelta(seconds=rng.uniform(0, 600))
    event = make_event(rng.choice(ACTIONS), fields,
                       timestamp_ns=int(stamp.timestamp() * 1e6) * 1000,
                       outcome=rng.choice(["success", "failure", "failure", "unknown"]))
    if i % 17 == 0:
        del event["event.outcome"]  # absent: NOT outcome:x holds for it
    return event


#: 400 events over ten minutes, in ledger order but not in time order.
DATA: list[tuple[int, Event]] = [(i, _event(random.Random(i), i)) for i in range(400)]

FILTERS: dict[str, Callable[[Event], bool]] = {
    "": lambda e: True,
    "event.outcome:failure": lambda e: e.get("event.outcome") == "failure",
    "event.action:authn_login_fail OR event.action:authz_fail":
        lambda e: e["event.action"] in ("authn_login_fail", "authz_fail"),
    "NOT event.outcome:success": lambda e: e.get("event.outcome") != "success",
    "event.action:authn* event.outcome:failure":
        lambda e: e["event.action"].startswith("authn") and e.get("event.outcome") == "failure",
}
#: [since, until) ranges: unaligned at both ends, aligned, open-ended, within one minute.
RANGES = [
    (T0 + timedelta(seconds=75.5), T0 + timedelta(seconds=430.25)),
    (T0 + timedelta(minutes=2), T0 + timedelta(minutes=7)),
    (T0 + timedelta(seconds=1), None),
    (T0 - timedelta(hours=1), None),
    (T0 + timedelta(seconds=130), T0 + timedelta(seconds=170)),
]


def _in(event: Event, since: datetime, until: datetime | None) -> bool:
    at = datetime.fromisoformat(event["@timestamp"])
    return since <= at and (until is None or at < until)


def _top(counts: Mapping[str, int], field: str, n: int = 10) -> list[tuple[str, int]]:
    def tie(value: str) -> Any:
        if field != "source.ip":
            return value
        address = ipaddress.ip_address(value)
        return address.version, address.packed
    return sorted(counts.items(), key=lambda item: (-item[1], tie(item[0])))[:n]


def check(store: Store, rows: list[tuple[int, Event]] = DATA) -> None:
    """Every aggregate of every filter and range equals the count over the events."""
    for text, matches in FILTERS.items():
        for since, until in RANGES:
            q = Query.parse(text, since=since, until=until)
            picked = [e for _, e in rows if matches(e) and _in(e, since, until)]
            assert store.count(q) == len(picked), (text, since, until)
            for width in (timedelta(minutes=1), timedelta(minutes=5)):
                step = width // timedelta(microseconds=1)
                buckets = Counter(
                    int(datetime.fromisoformat(e["@timestamp"]).timestamp() * 1e6) // step * step
                    for e in picked)
                want = [(datetime.fromtimestamp(b / 1e6, UTC), n)
                        for b, n in sorted(buckets.items())]
                assert store.histogram(q, width) == want, (text, since, until, width)
            fields = ["event.action", "event.outcome", *ACTORS[:2]]
            if text == "event.outcome:failure":
                fields += ACTORS[2:]
            for field in fields:
                values = Counter(e[field] for e in picked if isinstance(e.get(field), str))
                if field == "source.ip":
                    values = Counter({str(ipaddress.ip_address(v)): n for v, n in values.items()})
                assert store.top(field, q, 3) == _top(values, field, 3), (text, field, since)


class TestAgreement:
    def test_aggregates_equal_the_events(self, store: Store) -> None:
        """Counts, histograms and top lists over ranges equal what the events hold, also
        after more events arrive in minutes already counted."""
        store.insert(DATA[:150])
        check(store, DATA[:150])
        store.insert(DATA[150:])
        check(store)

    def test_repeated_batches_are_counted_once(self, store: Store) -> None:
        """Inserting known ledger indexes again (a replay) leaves every aggregate unchanged."""
        store.insert(DATA[:300])
        store.insert(DATA[200:])
        store.insert(DATA)
        check(store)

    def test_late_events_count_in_their_own_minute(self, store: Store) -> None:
        """An event arriving after later minutes were counted lands in its own minute."""
        late = sorted(DATA, key=lambda row: row[1]["@timestamp"], reverse=True)
        for at in range(0, len(late), 50):
            store.insert(late[at:at + 50])
        check(store)


class TestPlan:
    def test_whole_minutes_come_from_the_rollup_and_ends_from_the_events(self) -> None:
        """A range is read as whole minutes from the rollup plus its partial ends."""
        asked: list[tuple[str, datetime | None, datetime | None]] = []

        class Reader:
            def counts(self, source: rollup.Source, q: Query, group: rollup.Group
                       ) -> Mapping[Any, int]:
                asked.append((source, q.since, q.until))
                if isinstance(group, int):  # per minute: two of them
                    return {T0_US + rollup.MINUTE: 1, T0_US + 2 * rollup.MINUTE: 1}
                return {None: 1}

        since, until = T0 + timedelta(seconds=30), T0 + timedelta(minutes=3, seconds=10)
        cache = MinuteCache()
        assert rollup.count(Reader(), cache, Query.parse("event.action:authz_fail", since=since,
                                                         until=until)) == 3
        assert asked == [("minutes", T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)),
                         ("events", since, T0 + timedelta(minutes=1)),
                         ("events", T0 + timedelta(minutes=3), until)]
        asked.clear()
        rollup.count(Reader(), cache, Query.parse("user.name:bob", since=since, until=until))
        # Another field: the minutes' event counts, then the minutes not cached, then the ends.
        assert asked == [("minutes", T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)),
                         ("events", T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)),
                         ("events", since, T0 + timedelta(minutes=1)),
                         ("events", T0 + timedelta(minutes=3), until)]


class TestRebuilt:
    def test_sqlite_crash_replay_restores_the_rollups(self, tmp_path: Path) -> None:
        """Rows lost uncommitted in a crash are counted again when the ledger tail is replayed."""
        path = tmp_path / "events.db"
        script = (
            "import os, sys\n"
            "sys.path.insert(0, sys.argv[2])\n"
            "from test_rollup import DATA\n"
            "from apiwatch.store import sqlite\n"
            "sqlite.COMMIT_SECONDS = 3600.0\n"
            "store = sqlite.SqliteStore(sys.argv[1])\n"
            "store.insert(DATA[:200])\n"
            "store.max_ledger_index()\n"  # commits
            "store.insert(DATA[200:])\n"  # left uncommitted
            "os._exit(0)\n"
        )
        here = str(Path(__file__).parent)
        subprocess.run([sys.executable, "-c", script, str(path), here], check=True)
        store = SqliteStore(path)
        assert store.max_ledger_index() == 199
        check(store, DATA[:200])
        store.insert(DATA[200:])  # what recovery replays
        check(store)
        store.close()

    def test_sqlite_store_older_than_the_rollup_is_counted_on_open(self, tmp_path: Path
                                                                    ) -> None:
        """A store file made before the rollup gets it filled from its events on open."""
        path = tmp_path / "events.db"
        store = SqliteStore(path)
        store.insert(DATA)
        store.close()
        with sqlite3.connect(path) as db:
            db.execute("DROP TABLE minutes")
        store = SqliteStore(path)
        check(store)
        store.close()

    def test_postgres_store_older_than_the_rollup_is_counted_on_open(
        self, postgres_store: PostgresStore
    ) -> None:
        """A PostgreSQL schema made before the rollup gets it filled from its events."""
        postgres_store.insert(DATA)
        schema = postgres_store._conn.execute("SELECT current_schema()").fetchone()
        assert schema is not None
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE {}.minutes").format(sql.Identifier(schema[0])))
        again = PostgresStore(POSTGRES_DSN, schema=schema[0])
        check(again)
        again.close()

    def test_postgres_clear_empties_the_rollup(self, postgres_store: PostgresStore) -> None:
        """After clear (what reindex does first) and a refill, the rollup counts each event once."""
        postgres_store.insert(DATA)
        postgres_store.clear()
        assert postgres_store.count(Query(since=T0)) == 0
        postgres_store.insert(DATA)
        check(postgres_store)


def test_reindex_rebuilds_the_rollup(tmp_path: Path) -> None:
    """`apiwatch reindex` on a SQLite store rebuilds a rollup equal to the events."""
    from click.testing import CliRunner  # noqa: PLC0415

    from apiwatch.cli import main  # noqa: PLC0415
    from apiwatch.collector.runtime import Collector  # noqa: PLC0415
    from apiwatch.config import Config  # noqa: PLC0415

    config = Config(data_dir=tmp_path)
    collector = Collector.open(config)
    collector.pipeline.ingest("app", [event for _, event in DATA])
    before = [collector.store.top(f, Query.parse("event.outcome:failure", since=T0), 5)
              for f in ACTORS]
    path = Path(collector.config.store_url.removeprefix("sqlite://"))
    collector.close()
    with sqlite3.connect(path) as db:  # damage the rollup: reindex must not keep it
        db.execute("UPDATE minutes SET n = n + 1")
    result = CliRunner().invoke(main, ["reindex", "--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    store = SqliteStore(path)
    stored = store.query(Query(limit=1000)).events
    check(store, [(s.index, s.event) for s in stored])
    assert [store.top(f, Query.parse("event.outcome:failure", since=T0), 5)
            for f in ACTORS] == before
    store.close()


@settings(max_examples=200, deadline=None)
@given(st.lists(
    st.tuples(st.integers(-(10**9), 10**13), st.sampled_from([5, 6]), st.sampled_from([7, 8])),
    min_size=1, max_size=40,
), st.booleans())
def test_a_batch_is_counted_by_minute_action_and_outcome(
    events: list[tuple[int, int, int]], one_kind: bool
) -> None:
    """SQLite's `minutes` gets the batch's counts whether its rows share one action and outcome
    (counted by minute alone) or not (by key tuple)."""
    if one_kind:
        events = [(ts, 5, 7) for ts, _, _ in events]
    columns = ["idx", "ts", *HOT.values(), "doc"]
    rows = []
    for ts, action, outcome in events:
        row: dict[str, Any] = dict.fromkeys(columns, 0)
        row.update(ts=ts, action=action, outcome=outcome)
        rows.append(tuple(row.values()))
    db = sqlite3.connect(":memory:")
    db.execute(sqlite_rollup.SCHEMA)
    sqlite_rollup.add(db, rows)
    stored = {(ts, a, o): n for ts, a, o, n in db.execute("SELECT * FROM minutes")}
    assert stored == Counter((ts - ts % rollup.MINUTE, a, o) for ts, a, o in events)
