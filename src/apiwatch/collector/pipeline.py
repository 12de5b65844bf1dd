"""The one path every event takes into the collector, whatever brought it.

HTTP ingest, the syslog receiver and `apiwatch ingest` all call `Pipeline.ingest`: events are
re-sanitized (a source is never trusted), stamped with the source identity and the receiving
time, sorted into new events and duplicates by sequence number, appended to the ledger (durable
before this returns), indexed in the store, then handed to the listeners (detection). The index
store and the sequence state are derived from the ledger: after a crash `recover` replays the
ledger's tail into both, so nothing acknowledged is ever missing from them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from apiwatch.collector.indexer import IndexerProcess
from apiwatch.collector.sources import SourceTracker
from apiwatch.events import Event, format_timestamp, make_event
from apiwatch.formats.ecs import encode_ecs
from apiwatch.ledger.log import Ledger
from apiwatch.sanitize import Sanitizer
from apiwatch.store import Store

#: The source name of events the collector writes about itself (refusals, gaps).
SELF_SOURCE = "apiwatch"
SNAPSHOT_NAME = "sources.json"

Listener = Callable[[Sequence[tuple[int, Event]]], None]


@dataclass(frozen=True)
class IngestResult:
    """What a batch came to: new events stored, repeats ignored, the ledger range used."""

    accepted: int
    duplicates: int
    first_index: int | None


class Pipeline:
    """Sanitize, stamp, deduplicate, append to the ledger, index; one writer at a time."""

    def __init__(
        self,
        ledger: Ledger,
        store: Store,
        sanitizer: Sanitizer,
        state_dir: Path,
        tenants: dict[str, str] | None = None,
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.sanitize = sanitizer
        self.tenants = tenants or {}
        #: Adds network fields to each received event before it is sanitized (`apiwatch.enrich`).
        self.enrich: Callable[[Event], Event] | None = None
        self.listeners: list[Listener] = []
        #: The index store's writer process; None writes the store inline (`index_in_process`).
        self.indexer: IndexerProcess | None = None
        self._snapshot_path = state_dir / SNAPSHOT_NAME
        self._lock = threading.Lock()
        self.tracker = SourceTracker()

    def ingest(
        self,
        source: str,
        events: Sequence[Event],
        received_ns: int | None = None,
        *,
        wait: bool = True,
    ) -> IngestResult:
        """Store a batch from `source`; returns once the new events are durable and indexed.

        `wait=False` returns once they are durable (in the ledger), leaving the indexer process
        to catch up: for bulk loads that acknowledge nothing per batch; `flush` waits.
        """
        now = time.time_ns() if received_ns is None else received_ns
        received = format_timestamp(now)
        tenant = self.tenants.get(source)
        stamped: list[Event] = []
        for raw in events:
            event = self.sanitize(raw if self.enrich is None else self.enrich(raw))
            event["apiwatch.source"] = source
            event["event.ingested"] = received
            if tenant:
                event["apiwatch.tenant"] = tenant
            stamped.append(event)
        with self._lock:
            admission = self.tracker.admit(source, stamped)
            batch = [self._gap_event(source, first, last, now) for first, last in admission.gaps]
            batch.extend(admission.new)
            first = self._append(batch) if batch else None
            self.tracker.commit(admission, now)
        if first is not None and wait:
            self._indexed(first + len(batch) - 1)
        return IngestResult(len(admission.new), admission.duplicates, first)

    def record(self, event: Event) -> int:
        """Store an event the collector raises itself (a refused request, say)."""
        event["apiwatch.source"] = SELF_SOURCE
        event["event.ingested"] = format_timestamp(time.time_ns())
        clean = self.sanitize(event)
        with self._lock:
            index = self._append([clean])
        self._indexed(index)
        return index

    def index_in_process(self, store_url: str, lock_path: Path) -> None:
        """Hand index-store writes to a child process (`apiwatch.collector.indexer`) that
        holds the writer lock `lock_path`."""
        self.indexer = IndexerProcess(store_url, lock_path, self.store.max_ledger_index())

    def flush(self) -> None:
        """Wait until everything appended so far is in the index store."""
        if self.ledger.size:
            self._indexed(self.ledger.size - 1)

    def close(self) -> None:
        """Stop the indexer process, if any, once it has committed everything."""
        if self.indexer is not None:
            self.indexer.close()
            self.indexer = None

    def _append(self, batch: list[Event]) -> int:
        records = [encode_ecs(e)[:-1] for e in batch]
        indexer = self.indexer
        if indexer is not None and indexer.failed:
            # Before the append, so the new child's catch-up stops where this batch starts.
            indexer.restart(self.ledger.size, self.ledger.read_range)
        first = self.ledger.append_batch(records)
        indexed = list(enumerate(batch, start=first))
        if indexer is None:
            self.store.insert(indexed, encoded=records)
        else:
            indexer.submit(first, records)
        for listener in self.listeners:
            listener(indexed)
        return first

    def _indexed(self, last: int) -> None:
        """Block until ledger index `last` is in the index store (a no-op when inline)."""
        if self.indexer is not None:
            self.indexer.wait(last)

    @staticmethod
    def _gap_event(source: str, first: int, last: int, now: int) -> Event:
        return make_event(
            "source_sequence_gap",
            {
                "apiwatch.source": source,
                "apiwatch.gap.first": first,
                "apiwatch.gap.last": last,
            },
            message=f"source {source} skipped events {first}..{last}",
            timestamp_ns=now,
        )

    def snapshot(self) -> None:
        """Write the sequence state with the ledger size it reflects (atomically)."""
        with self._lock:
            data = {"ledger_size": self.ledger.size, "sources": self.tracker.to_json()}
        tmp = self._snapshot_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(data))
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(self._snapshot_path)

    def recover(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Bring sequence state and store up to the ledger; returns the records replayed."""
        size = self.ledger.size
        state_from = 0
        if self._snapshot_path.exists():
            data = orjson.loads(self._snapshot_path.read_bytes())
            if data["ledger_size"] <= size:
                self.tracker = SourceTracker.from_json(data["sources"])
                state_from = data["ledger_size"]
        highest = self.store.max_ledger_index()
        store_from = 0 if highest is None else highest + 1
        start = min(state_from, store_from)
        pending: list[tuple[int, Event]] = []
        for index in range(start, size):
            event: Event = orjson.loads(self.ledger.read(index))
            if index >= state_from:
                self._replay_sequence(event)
            if index >= store_from:
                pending.append((index, event))
                if len(pending) >= 1000:
                    self.store.insert(pending)
                    pending = []
            if progress is not None:
                progress(index + 1 - start, size - start)
        if pending:
            self.store.insert(pending)
        return size - start

    def _replay_sequence(self, event: Event) -> None:
        source = event.get("apiwatch.source")
        if not isinstance(source, str) or source == SELF_SOURCE:
            return
        admission = self.tracker.admit(source, [event])
        self.tracker.commit(admission, time.time_ns())
