"""The emitter: takes events on the request path without ever blocking it.

`emit` numbers the event and puts it on a bounded in-memory queue; a background thread drains the
queue every `flush_interval` seconds (or as soon as a batch is full), sanitizes and hands batches
to the sinks. When the queue is full the event is dropped and counted, never waited for. A sink
that fails is counted and the others still get the batch; capture never raises into the app.

What a kill -9 can lose: the events still on the queue (at most `queue_size`, at most
`flush_interval` seconds' worth at a steady rate). Sequence numbers are reserved on disk in blocks
before they are handed out, so after a restart numbering resumes past anything that may have
been lost and the collector sees the loss as a sequence gap.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from apiwatch.events import Event, make_event
from apiwatch.sanitize import Sanitizer

log = logging.getLogger("apiwatch.capture")


class Sink(Protocol):
    """A destination for sanitized events (spool, file, syslog, stdout)."""

    def write(self, events: Sequence[Event]) -> None:
        """Write a batch; raise to report failure (the emitter counts it)."""

    def close(self) -> None:
        """Flush and release resources."""


class SequenceReservation:
    """Per-source sequence numbers that survive restarts without reuse.

    Numbers are handed out from a block whose upper end is written to `path` before the block
    is used; a restart starts after the recorded end. The write is not fsynced: it must survive
    the process dying, which the page cache ensures, not the machine losing power.
    """

    def __init__(self, path: Path, block: int = 10_000) -> None:
        self.path = path
        self.block = block
        self._lock = threading.Lock()
        try:
            reserved = int(path.read_text().strip() or 0)
        except FileNotFoundError:
            reserved = 0
        self._next = reserved + 1
        self._limit = reserved

    def next(self) -> int:
        """The next number; thread-safe."""
        with self._lock:
            if self._next > self._limit:
                self._limit = self._next + self.block - 1
                self._write(self._limit)
            value = self._next
            self._next += 1
            return value

    def release(self) -> None:
        """Give back the unused rest of the block (on a clean close): a restart then continues
        at the next number instead of leaving a gap the collector would report as a loss."""
        with self._lock:
            self._write(self._next - 1)
            self._limit = self._next - 1

    def _write(self, value: int) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{value}\n")
        tmp.replace(self.path)


@dataclass
class EmitterStats:
    """Counters of what happened to emitted events."""

    emitted: int = 0
    written: int = 0
    dropped_queue_full: int = 0
    sink_errors: int = 0


class Emitter:
    """Bounded queue, background drain, several sinks; `emit` is O(1) and never blocks."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        sequence: SequenceReservation | None = None,
        sanitizer: Sanitizer | None = None,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.2,
    ) -> None:
        self.sinks = list(sinks)
        self.sequence = sequence
        self.sanitize = sanitizer or Sanitizer()
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.stats = EmitterStats()
        self._queue: deque[Event] = deque()
        # `_pending`: the queue went from empty to not empty; `_now`: a batch is full, or a
        # flush or close wants delivery at once. An idle emitter sleeps without timers, so it
        # never takes the GIL from the app's threads when there is nothing to do.
        self._pending = threading.Event()
        self._now = threading.Event()
        self._processed = 0
        self._done = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="apiwatch-emitter", daemon=True)
        self._thread.start()

    def emit(self, event: Event) -> bool:
        """Queue `event`; False if it was dropped because the queue is full."""
        if len(self._queue) >= self.queue_size:
            self.stats.dropped_queue_full += 1
            return False
        if self.sequence is not None:
            event["apiwatch.seq"] = self.sequence.next()
        queue = self._queue
        queue.append(event)
        self.stats.emitted += 1
        if len(queue) == 1:
            self._pending.set()
        elif len(queue) >= self.batch_size:
            self._now.set()
        return True

    def _run(self) -> None:
        while True:
            self._pending.wait()
            self._now.wait(self.flush_interval)  # let a batch gather, at most flush_interval
            self._pending.clear()
            self._now.clear()
            self._drain()
            if self._closing and not self._queue:
                return

    def _drain(self) -> None:
        while self._queue:
            batch: list[Event] = []
            while self._queue and len(batch) < self.batch_size:
                batch.append(self._queue.popleft())
            self._deliver(batch)
            with self._done:
                self._processed += len(batch)
                self._done.notify_all()

    def _deliver(self, batch: list[Event]) -> None:
        clean: list[Event] = []
        for event in batch:
            try:
                clean.append(self.sanitize(event))
            except Exception:  # telemetry fails open: one bad event never stops the others
                self.stats.sink_errors += 1
                log.exception("apiwatch: could not sanitize an event")
        for sink in self.sinks:
            try:
                sink.write(clean)
            except Exception:  # counted and logged; the app must not see it
                self.stats.sink_errors += 1
                log.warning("apiwatch: sink %s failed", type(sink).__name__, exc_info=True)
        self.stats.written += len(clean)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far reached the sinks; False on timeout."""
        target = self.stats.emitted
        self._pending.set()
        self._now.set()
        with self._done:
            return self._done.wait_for(lambda: self._processed >= target, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, stop the thread, close the sinks."""
        self._closing = True
        self._pending.set()
        self._now.set()
        self._thread.join(timeout)
        if self.sequence is not None and not self._thread.is_alive():
            self.sequence.release()  # every number handed out reached the sinks
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # closing must not raise into shutdown
                log.warning("apiwatch: closing sink %s failed", type(sink).__name__, exc_info=True)


def drop_report(dropped: int, where: str) -> Event:
    """The event that tells the collector how many events were dropped and why."""
    return make_event(
        "log_events_dropped",
        {"apiwatch.dropped": dropped, "event.reason": where},
        message=f"apiwatch dropped {dropped} events: {where}",
    )
