"""Many threads ingesting at once: one fsync covers several appends (group commit), yet the
store and the listeners get every batch exactly once, in ledger order."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from apiwatch.collector.runtime import Collector
from apiwatch.config import load_config
from apiwatch.events import Event, make_event
from apiwatch.store import Query

THREADS, BATCHES, SIZE = 8, 25, 20


@pytest.mark.parametrize("index_process", [True, False])
def test_concurrent_batches_are_handed_over_in_ledger_order(
    tmp_path: Path, index_process: bool
) -> None:
    """Listeners see indexes 0, 1, 2, ... with no gap or repeat; the store holds them all."""
    config = load_config(None, env={
        "APIWATCH_DATA_DIR": str(tmp_path / "data"),
        "APIWATCH_STORE_INDEX_PROCESS": str(index_process).lower(),
    })
    collector = Collector.open(config)
    seen: list[int] = []
    collector.pipeline.listeners.append(
        lambda first, batch: seen.extend(range(first, first + len(batch)))
    )

    def source(number: int) -> None:
        for b in range(BATCHES):
            events: Sequence[Event] = [
                make_event("authn_login_fail", {
                    "source.ip": f"192.0.2.{number}", "apiwatch.seq": b * SIZE + i + 1,
                })
                for i in range(SIZE)
            ]
            collector.pipeline.ingest(f"app{number}", events)

    try:
        threads = [threading.Thread(target=source, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        total = THREADS * BATCHES * SIZE
        assert collector.ledger.size == total
        assert seen == list(range(total))
        assert collector.store.count(Query.parse("event.action:authn_login_fail")) == total
    finally:
        collector.close()
