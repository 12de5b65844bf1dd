"""The SQLite store's WAL checkpoints (`apiwatch.store.sqlite_checkpoint`): the bulk runs in a
thread while the writer goes on, yet the log still starts again from its beginning (it does not
grow with the store), readers keep their snapshots, and nothing committed is lost."""

from __future__ import annotations

import sqlite3
import struct
import threading
from pathlib import Path

import pytest

from apiwatch.events import make_event
from apiwatch.events.model import Event
from apiwatch.store import Query, sqlite_checkpoint
from apiwatch.store.sqlite import SqliteStore


def _batch(first: int, count: int) -> list[tuple[int, Event]]:
    return [
        (i, make_event("authn_login_fail", {
            "source.ip": f"10.0.{i >> 8 & 255}.{i & 255}", "user.name": f"user{i % 50}",
        }))
        for i in range(first, first + count)
    ]


def _log_generation(path: Path) -> int:
    """The WAL header's checkpoint sequence number: SQLite adds one each time the log starts
    again from its beginning."""
    with open(f"{path}-wal", "rb") as log:
        sequence: int = struct.unpack(">I", log.read(16)[12:16])[0]
        return sequence


@pytest.fixture(autouse=True)
def _small_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_checkpoint, "CHECKPOINT_ROWS", 1000)


def test_the_log_starts_again_while_the_writer_keeps_committing(tmp_path: Path) -> None:
    """Batch after batch, committed one by one as the indexer does: the thread's checkpoints
    and the writer's tail let the log restart, well before the safety net's 320 MiB."""
    path = tmp_path / "events.db"
    store = SqliteStore(path)
    generations: set[int] = set()
    inserted = 0
    try:
        while len(generations) < 3 and inserted < 200_000:
            store.insert(_batch(inserted, 250))
            inserted += 250
            store.max_ledger_index()  # commits
            generations.add(_log_generation(path))
        assert len(generations) >= 3
        with sqlite3.connect(path) as other:
            assert other.execute("SELECT count(*) FROM events").fetchone()[0] == inserted
    finally:
        store.close()
    assert SqliteStore(path).count(Query()) == inserted


def test_a_reader_keeps_its_snapshot_through_checkpoints(tmp_path: Path) -> None:
    """Another process reading (`apiwatch export` beside a running collector) sees the rows of
    its snapshot while checkpoints run, then everything; the writer is never refused."""
    path = tmp_path / "events.db"
    store = SqliteStore(path)
    try:
        store.insert(_batch(0, 500))
        store.max_ledger_index()
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == 500
        for first in range(500, 8500, 500):
            store.insert(_batch(first, 500))
            store.max_ledger_index()
            assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == 500
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == 8500
        reader.close()
        assert store.count(Query()) == 8500
    finally:
        store.close()


def test_close_waits_for_a_running_checkpoint(tmp_path: Path) -> None:
    """Closed right after a checkpoint began: the thread is gone, and the file reopens whole."""
    path = tmp_path / "events.db"
    store = SqliteStore(path)
    for first in range(0, 5000, 500):
        store.insert(_batch(first, 500))
        store.max_ledger_index()
    store.close()
    assert not [t for t in threading.enumerate() if t.name == "apiwatch-store-checkpoint"]
    reopened = SqliteStore(path)
    try:
        assert reopened.count(Query()) == 5000
        assert reopened.max_ledger_index() == 4999
        (check,) = sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()
        assert check == "ok"
    finally:
        reopened.close()


def test_an_in_memory_store_has_no_checkpoints() -> None:
    """No log, no thread: `:memory:` stores (tests, throwaway queries) work as before."""
    store = SqliteStore(":memory:")
    try:
        for first in range(0, 3000, 500):
            store.insert(_batch(first, 500))
            store.max_ledger_index()
        assert store.count(Query()) == 3000
        assert not [t for t in threading.enumerate() if t.name == "apiwatch-store-checkpoint"]
    finally:
        store.close()
