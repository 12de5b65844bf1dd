"""kill -9 of `apiwatch serve` during a 100,000-event ingest loses and duplicates nothing."""

from __future__ import annotations

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
