"""kill -9 of `apiwatch serve`, or of its indexer process, during an ingest loses and
duplicates nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from collector_harness import client, launch, ndjson, post, shut

from apiwatch.ledger.verify import verify_ledger
from apiwatch.store import Query, open_store

TOTAL = 100_000
BATCH = 500


class RetryingShipper(threading.Thread):
    """Sends numbered batches in order; retries each until acknowledged, re-signed each time."""

    def __init__(self, url: str, batches: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.batches = batches
        self.acked = 0
        self.retries = 0
        self.unavailable = 0
        self.unexpected: list[str] = []

    def run(self) -> None:
        with client(self.url) as http:
            for body in self.batches:
                while not self._send(http, body):
                    self.retries += 1
                    time.sleep(0.05)
                self.acked += 1

    def _send(self, http: httpx.Client, body: bytes) -> bool:
        try:
            answer = post(http, "bulk", body)
        except httpx.TransportError:
            return False  # the collector is down: try again once it is back
        if answer.status_code == 409:
            time.sleep(1)  # re-sent within the same second: a new timestamp signs it anew
            return False
        if answer.status_code == 503:
            self.unavailable += 1  # the index store is catching up: retry, as Retry-After says
            return False
        if answer.status_code != 200:
            self.unexpected.append(answer.text)
            return False
        return True


def _seqs_in_store(url: str) -> list[int]:
    store = open_store(url)
    try:
        seqs: list[int] = []
        query = Query.parse("apiwatch.source:bulk AND event.action:http_request", limit=10_000)
        cursor = None
        while True:
            page = store.query(query.page(cursor))
            seqs.extend(stored.event["apiwatch.seq"] for stored in page.events)
            cursor = page.cursor
            if cursor is None:
                return seqs
    finally:
        store.close()


@pytest.mark.slow
def test_kill_9_mid_ingest_keeps_every_event_exactly_once(tmp_path: Path) -> None:
    """After kill -9 and a restart, a retrying client's 100,000 events are each stored once."""
    batches = [ndjson(range(first, first + BATCH)) for first in range(1, TOTAL + 1, BATCH)]
    collector = launch(tmp_path, ["bulk"])
    shipper = RetryingShipper(collector.url, batches)
    try:
        shipper.start()
        while shipper.acked < len(batches) // 3 and shipper.is_alive():
            time.sleep(0.01)
        collector.kill()
        killed_at = shipper.acked
        collector.start()
        shipper.join(120)
        assert not shipper.is_alive()
        assert collector.stop() == 0
    finally:
        shut(collector)
    assert 0 < killed_at < len(batches)
    assert shipper.retries > 0  # the kill did interrupt the stream
    assert shipper.unexpected == []
    result = verify_ledger(collector.data / "ledger")
    assert result.ok, result.findings
    seqs = _seqs_in_store(f"sqlite:///{collector.data / 'index.sqlite3'}")
    assert len(seqs) == TOTAL
    assert set(seqs) == set(range(1, TOTAL + 1))


def _indexer_pid(serve_pid: int) -> int:
    """The pid of the indexer process `apiwatch serve` started (its only child)."""
    tasks = Path(f"/proc/{serve_pid}/task").glob("*/children")  # any thread may have forked
    children = [pid for task in tasks for pid in task.read_text().split()]
    assert len(children) == 1, children
    return int(children[0])


def test_kill_9_of_the_indexer_mid_ingest_loses_nothing(tmp_path: Path) -> None:
    """The indexer process killed while a client streams: the collector starts a new one that
    catches up from the ledger, and every event is stored exactly once."""
    total = 20_000
    batches = [ndjson(range(first, first + BATCH)) for first in range(1, total + 1, BATCH)]
    collector = launch(tmp_path, ["bulk"])
    shipper = RetryingShipper(collector.url, batches)
    try:
        assert collector.proc is not None
        indexer = _indexer_pid(collector.proc.pid)
        shipper.start()
        while shipper.acked < len(batches) // 3 and shipper.is_alive():
            time.sleep(0.01)
        os.kill(indexer, signal.SIGKILL)
        shipper.join(120)
        assert not shipper.is_alive()
        assert shipper.acked == len(batches)
        assert _indexer_pid(collector.proc.pid) != indexer  # a new one took over
        assert collector.stop() == 0
    finally:
        shut(collector)
    assert shipper.unexpected == []
    seqs = _seqs_in_store(f"sqlite:///{collector.data / 'index.sqlite3'}")
    assert sorted(seqs) == list(range(1, total + 1))


def test_a_batch_replayed_after_a_restart_is_refused(tmp_path: Path) -> None:
    """The replay memory does not survive a restart, so the new collector refuses what was
    signed before it started (409, re-sign), instead of taking a replay of a batch without
    sequence numbers; the sender's fresh signature is accepted."""
    collector = launch(tmp_path, ["bulk"])
    try:
        body = ndjson([1, 2])
        stamp = int(time.time())
        with client(collector.url) as http:
            assert post(http, "bulk", body, timestamp=stamp).status_code == 200
        assert collector.stop() == 0
        while int(time.time()) == stamp:  # the restart is in a later second than the stamp
            time.sleep(0.05)
        collector.start()
        with client(collector.url) as http:
            replay = post(http, "bulk", body, timestamp=stamp)
            assert replay.status_code == 409
            assert replay.json()["error"] == "replayed_batch"
            fresh = post(http, "bulk", body)
            assert fresh.json() == {"accepted": 0, "duplicates": 2}
    finally:
        shut(collector)
