"""The index store written by a child process: acknowledged means queryable, and a child
killed with -9 loses nothing."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from apiwatch.collector.runtime import INDEXER_LOCK, Collector
from apiwatch.config import Config, load_config
from apiwatch.events import make_event
from apiwatch.store import Query
from apiwatch.store.errors import StoreError
from store_trouble import StorageTrouble


def _config(folder: Path, index_process: bool = True) -> Config:
    return load_config(None, env={
        "APIWATCH_DATA_DIR": str(folder / "data"),
        "APIWATCH_STORE_INDEX_PROCESS": "true" if index_process else "false",
    })


def _batch(first: int, count: int) -> list[dict[str, object]]:
    return [
        make_event("authn_login_fail", {
            "source.ip": f"203.0.113.{seq % 250}", "user.name": f"user{seq}",
            "apiwatch.seq": seq,
        })
        for seq in range(first, first + count)
    ]


def _store_file(config: Config) -> Path:
    return Path(config.store_url.removeprefix("sqlite:///"))


def _count(collector: Collector, text: str = "event.action:authn_login_fail") -> int:
    return collector.store.count(Query.parse(text))


def test_acknowledged_batch_is_queryable_at_once(tmp_path: Path) -> None:
    """The writer is another process, yet what ingest returned is already in the store."""
    collector = Collector.open(_config(tmp_path))
    try:
        indexer = collector.pipeline.indexer
        assert indexer is not None
        assert indexer.pid not in (None, os.getpid())
        for first in range(1, 1001, 100):
            collector.pipeline.ingest("api", _batch(first, 100))
            assert _count(collector) == first + 99
        page = collector.store.timeline("user", "user777")
        assert [s.event["apiwatch.seq"] for s in page.events] == [777]
        assert collector.store.max_ledger_index() == collector.ledger.size - 1
    finally:
        collector.close()


def test_indexer_killed_mid_ingest_loses_nothing(tmp_path: Path) -> None:
    """kill -9 of the indexer: a batch in flight when it died is refused (a retry is taken),
    one sent after the death was noticed goes to a new indexer; either way every event is in
    the store exactly once."""
    collector = Collector.open(_config(tmp_path))
    try:
        collector.pipeline.ingest("api", _batch(1, 100))
        indexer = collector.pipeline.indexer
        assert indexer is not None
        assert indexer.pid is not None
        os.kill(indexer.pid, signal.SIGKILL)
        refused = 0
        for first in range(101, 601, 100):
            for _attempt in range(3):  # a client retries what was not acknowledged
                try:
                    collector.pipeline.ingest("api", _batch(first, 100))
                    break
                except StoreError:
                    refused += 1
        assert refused <= 1  # only a batch the dead child held is refused
        assert _count(collector) == 600
        for seq in (1, 150, 600):
            assert len(collector.store.timeline("user", f"user{seq}").events) == 1
    finally:
        collector.close()


def test_close_commits_and_inline_store_agrees(tmp_path: Path) -> None:
    """After close, a collector that writes its index inline sees the same events."""
    collector = Collector.open(_config(tmp_path))
    collector.pipeline.ingest("api", _batch(1, 250))
    collector.close()
    reopened = Collector.open(_config(tmp_path, index_process=False))
    try:
        assert reopened.pipeline.indexer is None
        assert reopened.replayed == 0  # nothing was missing from the store
        assert _count(reopened) == 250
    finally:
        reopened.close()


@pytest.mark.parametrize("index_process", [True, False])
def test_a_store_that_failed_takes_back_the_missing_batches(
    tmp_path: Path, index_process: bool
) -> None:
    """A store insert that fails refuses its batch, and nothing newer goes in until the store
    has what it lacks from the ledger; the client's retry is a duplicate, acknowledged only
    once the store has it. Every event ends in the store exactly once, and detection saw each
    once. Inline, or in the indexer process (restarted from its last confirmed index)."""
    config = _config(tmp_path, index_process)
    collector = Collector.open(config)
    trouble = StorageTrouble(_store_file(config))
    seen: list[int] = []
    collector.pipeline.listeners.append(
        lambda _, batch: seen.extend(int(e["apiwatch.seq"]) for e in batch)
    )
    try:
        collector.pipeline.ingest("api", _batch(1, 100))
        collector.store.max_ledger_index()  # commits: the switch needs the write lock
        trouble.switch(on=True)
        for first in (101, 201):
            with pytest.raises(StoreError, match="disk I/O error"):
                collector.pipeline.ingest("api", _batch(first, 100))
        assert collector.store.max_ledger_index() == 99  # nothing after the gap went in
        trouble.switch(on=False)
        for first in (101, 201):  # the client's retries: in the ledger already
            assert collector.pipeline.ingest("api", _batch(first, 100)).duplicates == 100
            assert _count(collector) == 300  # all that was refused: acknowledged, queryable
        collector.pipeline.ingest("api", _batch(301, 100))
        assert _count(collector) == 400
        assert collector.store.max_ledger_index() == collector.ledger.size - 1
        for seq in (150, 250, 350):
            assert len(collector.store.timeline("user", f"user{seq}").events) == 1
        assert sorted(seen) == list(range(1, 401))
    finally:
        trouble.close()
        collector.close()


@pytest.mark.parametrize("index_process", [True, False])
@pytest.mark.parametrize("then", [(101, 201), (201, 101)], ids=["retry-first", "new-first"])
def test_an_index_store_on_a_full_disk_takes_back_its_batches(
    tmp_path: Path, small_disk: Any, index_process: bool, then: tuple[int, int]
) -> None:
    """The index store on a disk that fills up (a real tmpfs; the ledger has room): the batch
    whose rows do not fit is refused or, inline, lost from the store at its commit. Once there
    is room, whether the client's retry or a new batch comes first, every event ends in the
    store exactly once."""
    config = load_config(None, env={
        "APIWATCH_DATA_DIR": str(tmp_path / "data"),
        "APIWATCH_STORE_INDEX_PROCESS": "true" if index_process else "false",
        "APIWATCH_STORE_URL": f"sqlite:///{small_disk.path / 'index.sqlite3'}",
    })
    collector = Collector.open(config)
    try:
        collector.pipeline.ingest("api", _batch(1, 100))

        def write_the_second_batch() -> None:
            collector.pipeline.ingest("api", _batch(101, 100))
            # Inline, its rows may wait in the open transaction: the commit (here the one a
            # read of the store's maximum makes, as /metrics does) finds the disk full.
            collector.store.max_ledger_index()

        filler = small_disk.fill()
        with pytest.raises(StoreError, match="disk is full"):
            write_the_second_batch()
        filler.unlink()
        for first in then:
            for _attempt in range(3):  # a client retries what was not acknowledged
                try:
                    collector.pipeline.ingest("api", _batch(first, 100))
                    break
                except StoreError:
                    continue
            assert _count(collector) >= first + 99  # acknowledged: queryable
        assert _count(collector) == 300
        for seq in (100, 101, 200, 201):
            assert len(collector.store.timeline("user", f"user{seq}").events) == 1
        assert collector.store.max_ledger_index() == collector.ledger.size - 1
    finally:
        collector.close()


def test_an_inline_store_left_failing_is_caught_up_on_restart(tmp_path: Path) -> None:
    """The store is kept a prefix of the ledger, so reopening replays whatever it lacks."""
    config = _config(tmp_path, index_process=False)
    collector = Collector.open(config)
    trouble = StorageTrouble(_store_file(config))
    try:
        collector.pipeline.ingest("api", _batch(1, 100))
        collector.store.max_ledger_index()
        trouble.switch(on=True)
        for first in (101, 201):
            with pytest.raises(StoreError):
                collector.pipeline.ingest("api", _batch(first, 100))
        trouble.switch(on=False)
    finally:
        trouble.close()
        collector.close()
    reopened = Collector.open(config)
    try:
        assert reopened.replayed == 200
        assert _count(reopened) == 300
    finally:
        reopened.close()


@pytest.mark.parametrize("index_process", [True, False])
def test_both_writers_give_the_same_answers(tmp_path: Path, index_process: bool) -> None:
    """Inline or in a child process, the same batches give the same store."""
    collector = Collector.open(_config(tmp_path, index_process))
    try:
        collector.pipeline.ingest("api", _batch(1, 300))
        assert _count(collector, "source.ip:203.0.113.7") == 2
        assert collector.store.top("user.name", Query(), 1)[0][1] == 1
    finally:
        collector.close()


def test_a_new_collector_waits_for_the_index_writer_of_a_killed_one(tmp_path: Path) -> None:
    """While an earlier run's indexer still holds the writer lock (kill -9 of its collector
    leaves it committing), a new collector does not touch the store; it opens once the lock
    is free."""
    (tmp_path / "data").mkdir()
    fd = os.open(tmp_path / "data" / INDEXER_LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    opened: list[Collector] = []
    opener = threading.Thread(target=lambda: opened.append(Collector.open(_config(tmp_path))))
    opener.start()
    opener.join(1.0)
    assert opener.is_alive()
    assert opened == []
    os.close(fd)
    opener.join(60)
    assert len(opened) == 1
    opened[0].close()
