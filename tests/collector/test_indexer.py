"""The index store written by a child process: acknowledged means queryable, and a child
killed with -9 loses nothing."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
from pathlib import Path

import pytest

from apiwatch.collector.runtime import INDEXER_LOCK, Collector
from apiwatch.config import Config, load_config
from apiwatch.events import make_event
from apiwatch.store import Query
from apiwatch.store.errors import StoreError


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
