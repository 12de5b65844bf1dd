"""What only the SQLite store does: reopening a file, group commits, reusing the ledger's JSON."""

from __future__ import annotations

import ipaddress
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from store_data import DATASET
from test_store_backends import QUERIES

from apiwatch.store import Query, StoreError, sqlite_rollup
from apiwatch.store import sqlite as sqlite_module
from apiwatch.store.base import HOT, Order, Store
from apiwatch.store.query import Node, Not, Term, Wildcard
from apiwatch.store.sqlite import SqliteStore


def committed_rows(path: Path) -> int:
    """Rows another connection sees, i.e. committed ones."""
    with sqlite3.connect(path) as other:
        return int(other.execute("SELECT count(*) FROM events").fetchone()[0])


class TestReopen:
    def test_reopened_store_reads_and_extends_what_it_stored(self, tmp_path: Path) -> None:
        """A store reopened from its file answers as before and interns new and known terms."""
        path = tmp_path / "events.db"
        first = SqliteStore(path)
        first.insert(DATASET[:20])
        before = first.query(Query(limit=100))
        first.close()
        again = SqliteStore(path)
        assert again.query(Query(limit=100)) == before
        assert again.max_ledger_index() == 19
        again.insert(DATASET[20:])  # known users and IPs, and some new ones
        assert again.count(Query()) == len(DATASET)
        users = [i for i, e in reversed(DATASET) if e.get("user.name") == "bob"]
        assert [s.index for s in again.timeline("user", "bob").events] == users
        assert again.top("user.name", Query(), 4) == first_top(DATASET)
        again.close()
        third = SqliteStore(path)
        assert third.count(Query.parse("source.ip:10.0.0.0/8")) == sum(
            e["source.ip"].startswith("10.") for _, e in DATASET
        )
        third.close()


def first_top(rows: list[tuple[int, dict[str, object]]]) -> list[tuple[str, int]]:
    """The 4 most frequent user names with counts, ties by value."""
    counts: dict[str, int] = {}
    for _, event in rows:
        name = event.get("user.name")
        if isinstance(name, str):
            counts[name] = counts.get(name, 0) + 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0].encode()))[:4]


class TestCommits:
    def test_first_batch_after_a_quiet_spell_is_committed_at_once(self, tmp_path: Path) -> None:
        """A lone batch is committed by its insert, so another process can read it."""
        path = tmp_path / "events.db"
        store = SqliteStore(path)
        store.insert(DATASET[:10])
        assert committed_rows(path) == 10
        store.close()
        store.close()  # a second close is a no-op

    def test_uncommitted_rows_are_queryable_and_max_index_commits(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A batch right after a commit waits in the open transaction, visible to queries;
        max_ledger_index commits it before answering."""
        monkeypatch.setattr(sqlite_module, "COMMIT_SECONDS", 3600.0)
        path = tmp_path / "events.db"
        store = SqliteStore(path)
        store.insert(DATASET[:10])
        store.insert(DATASET[10:20])
        assert store.count(Query()) == 20
        assert committed_rows(path) == 10  # the second batch is still in the transaction
        assert store.max_ledger_index() == 19
        assert committed_rows(path) == 20
        store.close()

    def test_full_group_is_committed_by_the_insert(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Once COMMIT_ROWS rows are pending, the insert that reached it commits them."""
        monkeypatch.setattr(sqlite_module, "COMMIT_ROWS", 15)
        monkeypatch.setattr(sqlite_module, "COMMIT_SECONDS", 3600.0)
        path = tmp_path / "events.db"
        store = SqliteStore(path)
        store.insert(DATASET[:2])  # committed: the first after a quiet spell
        store.insert(DATASET[2:12])
        assert committed_rows(path) == 2
        store.insert(DATASET[12:20])
        assert committed_rows(path) == 20
        store.close()

    def test_idle_tail_is_committed_in_the_background(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Rows that no later insert follows are committed by the store on its own."""
        monkeypatch.setattr(sqlite_module, "COMMIT_SECONDS", 0.2)
        path = tmp_path / "events.db"
        store = SqliteStore(path)
        store.insert(DATASET[:2])
        store.insert(DATASET[2:5])  # within COMMIT_SECONDS of the first commit: pending
        deadline = time.monotonic() + 10
        while committed_rows(path) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert committed_rows(path) == 5
        store.close()

    def test_crash_loses_only_uncommitted_rows_and_replay_restores_them(
        self, tmp_path: Path
    ) -> None:
        """After a crash the store reports its committed maximum; replaying from there fills it."""
        path = tmp_path / "events.db"
        script = (
            "import os, sys\n"
            "sys.path.insert(0, sys.argv[2])\n"
            "from store_data import DATASET\n"
            "from apiwatch.store import sqlite\n"
            "sqlite.COMMIT_SECONDS = 3600.0\n"
            "store = sqlite.SqliteStore(sys.argv[1])\n"
            "store.insert(DATASET[:20])\n"
            "store.max_ledger_index()\n"  # commits
            "store.insert(DATASET[20:])\n"  # left uncommitted
            "os._exit(0)\n"
        )
        here = str(Path(__file__).parent)
        subprocess.run([sys.executable, "-c", script, str(path), here], check=True)
        store = SqliteStore(path)
        highest = store.max_ledger_index()
        assert highest == 19
        store.insert([row for row in DATASET if row[0] > highest])  # what recovery replays
        assert store.count(Query()) == len(DATASET)
        store.close()


class TestAddressLeaves:
    @pytest.mark.parametrize(
        ("node", "predicate"),
        [
            (Term("source.ip", "10.0.1.1"), lambda ip: ip == "10.0.1.1"),
            (Term("source.ip", "2001:db8::1"), lambda ip: ip == "2001:db8::1"),
            (Term("source.ip", "10.0.01.1"), lambda ip: False),
            (Wildcard("source.ip", "10.0.1.*"), lambda ip: ip.startswith("10.0.1.")),
            (Wildcard("source.ip", "*1"), lambda ip: ip.endswith("1")),
            (Not(Wildcard("source.ip", "*.?")), lambda ip: ":" in ip),
        ],
    )
    def test_term_and_wildcard_match_the_canonical_text(
        self, tmp_path: Path, node: Node, predicate: Callable[[str], bool]
    ) -> None:
        """Term and Wildcard leaves on source.ip (made by code: the parser makes CIDR blocks)
        match the canonical text, of IPv4 and IPv6 addresses alike."""
        store = SqliteStore(tmp_path / "events.db")
        store.insert(DATASET)
        want = sum(predicate(e["source.ip"]) for _, e in DATASET)
        assert want or isinstance(node, Term)
        assert store.count(Query(node)) == want
        store.close()


class TestFailedInsert:
    def test_terms_of_a_rolled_back_transaction_are_interned_again(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failed insert rolls back the open transaction with the terms it had added (those of
        earlier uncommitted batches too); the retried batches intern them again, so every user,
        key and IPv6 address is found, by its own id."""
        monkeypatch.setattr(sqlite_module, "COMMIT_SECONDS", 3600.0)
        store = SqliteStore(tmp_path / "events.db")
        store.insert(DATASET[:10])  # committed: the first after a quiet spell
        store.insert(DATASET[10:20])  # pending, new terms among them

        def failing_add(db: sqlite3.Connection, rows: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        with monkeypatch.context() as patch:
            patch.setattr(sqlite_rollup, "add", failing_add)
            with pytest.raises(StoreError, match="disk I/O"):
                store.insert(DATASET[20:])
        assert store.max_ledger_index() == 9
        store.insert(DATASET[10:])
        fresh = SqliteStore(tmp_path / "fresh.db")
        fresh.insert(DATASET)
        for text in QUERIES:
            q = Query.parse(text, limit=7)
            assert answers(store, q) == answers(fresh, q), text
        for kind, value in [("ip", "2001:db8::1"), ("user", "bob"), ("key", "key1")]:
            assert store.timeline(kind, value) == fresh.timeline(kind, value)  # type: ignore[arg-type]
        with sqlite3.connect(tmp_path / "events.db") as db:
            assert db.execute("SELECT count(*) FROM terms").fetchone() == db.execute(
                "SELECT count(DISTINCT field || value) FROM terms"
            ).fetchone()
        for each in (store, fresh):
            each.close()


class TestRowsOfEarlierVersions:
    def test_null_for_an_absent_hot_field_answers_as_today(self, tmp_path: Path) -> None:
        """Rows written before absent hot fields were stored as 0 hold NULL there; a store of
        such rows gives every page, count, top list and timeline a store of today's gives."""
        today = SqliteStore(tmp_path / "today.db")
        earlier = SqliteStore(tmp_path / "earlier.db")
        for store in (today, earlier):
            store.insert(DATASET)
        earlier.close()
        with sqlite3.connect(tmp_path / "earlier.db") as db:
            changed = db.execute(
                "UPDATE events SET "
                + ", ".join(f"{column} = nullif({column}, 0)" for column in HOT.values())
                + " WHERE 0 IN (" + ", ".join(HOT.values()) + ")"
            ).rowcount
        assert changed == sum(any(field not in e for field in HOT) for _, e in DATASET)
        earlier = SqliteStore(tmp_path / "earlier.db")
        for text in QUERIES:
            q = Query.parse(text, limit=7)
            assert answers(earlier, q) == answers(today, q), text
        for kind, value in [("ip", "10.0.3.3"), ("user", "Admin"), ("key", "key1")]:
            assert earlier.timeline(kind, value) == today.timeline(kind, value)  # type: ignore[arg-type]
        earlier.insert([(len(DATASET), DATASET[1][1])])  # no key, written as today: 0 beside NULL
        assert earlier.count(Query.parse("NOT apiwatch.api_key.id:key0")) == 1 + today.count(
            Query.parse("NOT apiwatch.api_key.id:key0")
        )
        for store in (today, earlier):
            store.close()


    def test_interned_ipv4_addresses_keep_their_ids(self, tmp_path: Path) -> None:
        """A store written when IPv4 addresses were interned (a `terms` row each) answers as a
        store of today, and keeps using those rows' ids for the addresses it knows while it
        computes the ids of new ones."""
        today = SqliteStore(tmp_path / "today.db")
        earlier = SqliteStore(tmp_path / "earlier.db")
        for store in (today, earlier):
            store.insert(DATASET)
        earlier.close()
        ipv4 = {e["source.ip"] for _, e in DATASET if "." in e["source.ip"]}
        assert intern_ipv4_as_before(tmp_path / "earlier.db") == len(ipv4)
        earlier = SqliteStore(tmp_path / "earlier.db")
        more = [
            (len(DATASET) + i, {**event, "source.ip": address})
            for i, ((_, event), address) in enumerate(
                zip(DATASET, ["10.0.1.1", "10.0.9.9", "192.0.2.1", "10.0.1.1"], strict=False)
            )
        ]
        for store in (today, earlier):
            store.insert(more)
        with sqlite3.connect(tmp_path / "earlier.db") as db:
            old, new = (
                db.execute("SELECT count(*) FROM events WHERE source_ip = ?", (id_of(a),))
                .fetchone()[0] for a in ("10.0.1.1", "10.0.9.9")
            )
        assert (old, new) == (0, 1)  # 10.0.1.1 by its `terms` row, 10.0.9.9 by its address
        for text in [*QUERIES, "source.ip:10.0.0.0/16", "source.ip:10.0.1.1", "source.ip:::/0"]:
            q = Query.parse(text, limit=7)
            assert answers(earlier, q) == answers(today, q), text
        for address in ("10.0.1.1", "10.0.9.9", "10.0.3.3", "192.0.2.1", "2001:db8::1"):
            assert earlier.timeline("ip", address) == today.timeline("ip", address), address
        for store in (today, earlier):
            store.close()


def test_new_ipv4_addresses_are_not_remembered(tmp_path: Path) -> None:
    """Every event from a new IPv4 address (a scan, a botnet): the ids are computed, so the
    writer's dictionary does not grow by an entry per address; IPv6 and other spellings of an
    address are still looked up and interned, and every address answers its timeline."""
    store = SqliteStore(tmp_path / "events.db")
    _, event = DATASET[0]
    addresses = [f"10.{i >> 8}.{i & 255}.7" for i in range(2000)]
    addresses += ["2001:db8::9", "::ffff:10.0.0.7"]
    store.insert([(i, {**event, "source.ip": a}) for i, a in enumerate(addresses)])
    known = store._ids[0]
    assert not any(address in known for address in addresses[:2000])
    assert "2001:db8::9" in known
    for index, address in ((0, "10.0.0.7"), (1999, "10.7.207.7"), (2000, "2001:db8::9")):
        assert [s.index for s in store.timeline("ip", address).events] == [index], address
    store.close()


def id_of(address: str) -> int:
    """The id today's writer computes for an IPv4 address."""
    return int(ipaddress.IPv4Address(address)) - 2**32


def intern_ipv4_as_before(path: Path) -> int:
    """Rewrite a store as the writer left it before IPv4 ids were computed: each address a
    `terms` row with the next sequential id, `events` and `postings` by that id. Returns how
    many addresses were rewritten."""
    with sqlite3.connect(path) as db:
        (last,) = db.execute("SELECT max(id) FROM terms").fetchone()
        computed = [row[0] for row in db.execute(
            "SELECT DISTINCT source_ip FROM events WHERE source_ip < 0 ORDER BY source_ip"
        )]
        for term, old in enumerate(computed, start=last + 1):
            address = ipaddress.IPv4Address(old + 2**32)
            key = b"\x04" + address.packed
            db.execute("INSERT INTO terms VALUES (?, 1, ?, ?)", (term, str(address), key))
            db.execute("UPDATE events SET source_ip = ? WHERE source_ip = ?", (term, old))
            db.execute("UPDATE postings SET actor = ? WHERE actor = ?", (term, old))
    return len(computed)


def answers(store: Store, q: Query) -> tuple[object, ...]:
    """Every page of `q`, its count and its top list of each hot field."""
    pages = []
    while True:
        page = store.query(q)
        pages.append(page)
        if page.cursor is None:
            break
        q = q.page(page.cursor)
    return pages, store.count(q), [store.top(field, q) for field in HOT]


class TestEncoded:
    def test_ledger_json_is_stored_as_given(self, tmp_path: Path) -> None:
        """With `encoded`, the stored document is the ledger's JSON; the first of a repeat wins."""
        store = SqliteStore(tmp_path / "events.db")
        batch = [DATASET[0], DATASET[1], (1, DATASET[5][1])]
        encoded = [orjson.dumps({**event, "marker": i}) for i, (_, event) in enumerate(batch)]
        store.insert(batch, encoded=encoded)
        events = {s.index: s.event for s in store.query(Query(limit=10)).events}
        assert events == {0: {**DATASET[0][1], "marker": 0}, 1: {**DATASET[1][1], "marker": 1}}
        store.close()

    def test_encoded_of_another_length_is_refused(self, tmp_path: Path) -> None:
        """`encoded` must pair one document with each event."""
        store = SqliteStore(tmp_path / "events.db")
        with pytest.raises(StoreError, match="encoded"):
            store.insert(DATASET[:2], encoded=[b"{}"])
        store.close()


class TestTimelineAcrossGenerations:
    def test_rare_and_busy_actors_page_like_a_full_sort(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Over many generations (runs of probes of growing length), a rare actor's and a busy
        actor's timelines, paged either way, equal their events sorted by time."""
        monkeypatch.setattr(sqlite_module, "GEN_BITS", 4)  # 16 indexes per generation
        store = SqliteStore(tmp_path / "events.db")
        batch = []
        for index in range(1600):  # 100 generations
            ip = "203.0.113.9" if index % 37 == 0 else "198.51.100.1"
            second = (index * 7919) % 1600  # times out of ledger order, as late events are
            batch.append((index, {
                "@timestamp": f"2026-11-01T00:{second // 60:02d}:{second % 60:02d}.000000Z",
                "event.action": "authn_login_fail", "source.ip": ip,
            }))
        store.insert(batch)
        for ip in ("203.0.113.9", "198.51.100.1"):
            mine = [(e["@timestamp"], i) for i, e in batch if e["source.ip"] == ip]
            cases: list[tuple[Order, list[tuple[str, int]]]] = [
                ("newest", sorted(mine, reverse=True)), ("oldest", sorted(mine))]
            for order, expected in cases:
                got: list[int] = []
                cursor = None
                while True:
                    page = store.timeline("ip", ip, order=order, limit=7, cursor=cursor)
                    got.extend(stored.index for stored in page.events)
                    cursor = page.cursor
                    if cursor is None:
                        break
                assert got == [i for _, i in expected], (ip, order)
        store.close()
