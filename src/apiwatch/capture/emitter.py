"""The emitter: takes events on the request path without ever blocking it.

`emit` numbers the event and puts it on a bounded in-memory queue; a background thread drains the
queue every `flush_interval` seconds (or as soon as a batch is full), sanitizes and hands batches
to the sinks. What the request path queues may also be a compact record that the thread turns
into the event (`materialize`), so that building it costs the request nothing. The thread works
in slices of at most `SLICE_SECONDS` and lets go of the GIL between them: an app thread waiting
for the GIL would otherwise wait for the interpreter's switch interval (5 ms) on every batch,
which showed as milliseconds of added p99 latency. A writer process (`capture.writer`) paces
itself the same way, in shorter slices, so that an app sharing its core waits for it at most
about `WRITER_SLICE_SECONDS`; a batch is built, encoded and checked `CHUNK_EVENTS` at a time
between two looks at the clock. When the queue is full the event is dropped
and counted, never waited for. A sink that fails is counted and the others still get the batch;
capture never raises into the app.

What a kill -9 can lose: the events still on the queue (at most `queue_size`, at most
`flush_interval` seconds' worth at a steady rate). Sequence numbers are reserved on disk in blocks
before they are handed out, so after a restart numbering resumes past anything that may have
been lost and the collector sees the loss as a sequence gap.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from apiwatch.capture.batch import EncodedBatch, sanitized_batch
from apiwatch.capture.writer import WriterProcess
from apiwatch.events import Event, make_event
from apiwatch.sanitize import Sanitizer

log = logging.getLogger("apiwatch.capture")

#: Longest stretch the drain thread holds the GIL for before it pauses.
SLICE_SECONDS = 0.001
#: The pause: long enough for a thread waiting on the GIL to wake and take it.
PAUSE_SECONDS = 0.0001
#: Longest stretch a writer process works before it pauses and leaves the CPU to the app, if
#: they share one: a 500-event batch took the core for 6 ms at a time and added 3.8 ms to the
#: app's p99 latency at half load (bench/middleware_bench.py, pinned); 0.25 ms slices, with the
#: writer's lower priority (`writer.WRITER_NICE`), brought that to +0.44 / +0.55 ms (two runs).
WRITER_SLICE_SECONDS = 0.00025
#: Events built, encoded and checked between two looks at the pacer's clock (the batch check
#: itself runs over a chunk at once, about 3 us per event).
CHUNK_EVENTS = 50

#: A compact record to turn into an event on the drain thread (see `Emitter.materialize`).
Record = tuple[Any, ...]


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
        materialize: Callable[[Record], Event] | None = None,
        process: bool = False,
    ) -> None:
        self.sinks = list(sinks)
        self.materialize = materialize
        self.sequence = sequence
        self.sanitize = sanitizer or Sanitizer()
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.stats = EmitterStats()
        # Events, or `(sequence number, record)` pairs for `materialize`.
        self._queue: deque[Event | tuple[int, Record]] = deque()
        # `_pending`: the queue went from empty to not empty; `_now`: a batch is full, or a
        # flush or close wants delivery at once. An idle emitter sleeps without timers, so it
        # never takes the GIL from the app's threads when there is nothing to do.
        self._pending = threading.Event()
        self._now = threading.Event()
        self._processed = 0
        self._done = threading.Condition()
        self._closing = False
        # `_deliver` pauses to share the GIL with the app, not in a writer process.
        self._app_pid = os.getpid()
        # Forked before the thread starts: the child begins as a copy of this object.
        self.writer = (
            WriterProcess(self._deliver, self._close_sinks, self._acknowledged) if process else None
        )
        self._thread = threading.Thread(target=self._run, name="apiwatch-emitter", daemon=True)
        self._thread.start()

    def emit(self, event: Event | Record) -> bool:
        """Queue `event` (or a record for `materialize`); False if it was dropped because the
        queue is full."""
        if len(self._queue) >= self.queue_size:
            self.stats.dropped_queue_full += 1
            return False
        seq = 0 if self.sequence is None else self.sequence.next()
        queue = self._queue
        if isinstance(event, dict):
            if seq:
                event["apiwatch.seq"] = seq
            queue.append(event)
        else:
            queue.append((seq, event))
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
            batch: list[Event | tuple[int, Record]] = []
            while self._queue and len(batch) < self.batch_size:
                batch.append(self._queue.popleft())
            if self.writer is not None and self.writer.alive:
                self.writer.send(batch)  # acknowledged later, in `_acknowledged`
            else:
                self._acknowledged(len(batch), *self._deliver(batch))

    def _acknowledged(self, handled: int, written: int, sink_failures: int) -> None:
        self.stats.written += written
        self.stats.sink_errors += handled - written + sink_failures  # unbuildable events too
        with self._done:
            self._processed += handled
            self._done.notify_all()

    def _deliver(self, batch: list[Event | tuple[int, Record]]) -> tuple[int, int]:
        """Build, sanitize and write `batch` to every sink: (events written, sinks failed)."""
        tick = self._pacer()
        clean = EncodedBatch([], [])
        for start in range(0, len(batch), CHUNK_EVENTS):
            events: list[Event] = []
            for item in batch[start:start + CHUNK_EVENTS]:
                try:
                    events.append(self._event(item))
                except Exception:  # telemetry fails open: one bad event never stops the others
                    log.exception("apiwatch: could not build an event")
                tick()
            part = sanitized_batch(events, self.sanitize, _sanitize_failed, tick)
            clean.extend(part)
            clean.lines.extend(part.lines)
            tick()
        failures = 0
        for sink in self.sinks:
            try:
                sink.write(clean)
            except Exception:  # counted and logged; the app must not see it
                failures += 1
                log.warning("apiwatch: sink %s failed", type(sink).__name__, exc_info=True)
        return len(clean), failures

    def _pacer(self) -> Callable[[], None]:
        """A function to call after each event: it pauses every `SLICE_SECONDS` in the app's
        process (letting go of the GIL), every `WRITER_SLICE_SECONDS` in a writer process
        (leaving the CPU to the app's process)."""
        work = SLICE_SECONDS if os.getpid() == self._app_pid else WRITER_SLICE_SECONDS
        pause_at = time.perf_counter() + work

        def tick() -> None:
            nonlocal pause_at
            if time.perf_counter() >= pause_at:
                time.sleep(PAUSE_SECONDS)
                pause_at = time.perf_counter() + work

        return tick

    def _event(self, item: Event | tuple[int, Record]) -> Event:
        if isinstance(item, dict):
            return item
        seq, record = item
        if self.materialize is None:
            raise TypeError("a record was emitted to an emitter without `materialize`")
        event = self.materialize(record)
        if seq:
            event["apiwatch.seq"] = seq
        return event

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
        delivered = not self._thread.is_alive()
        if self.writer is not None:
            delivered = self.writer.close(timeout) and delivered  # the child closes the sinks
        if self.sequence is not None and delivered:
            self.sequence.release()  # every number handed out reached the sinks
        self._close_sinks()  # with a writer process: this process's copies, never written to

    def _close_sinks(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # closing must not raise into shutdown
                log.warning("apiwatch: closing sink %s failed", type(sink).__name__, exc_info=True)


def _sanitize_failed() -> None:
    log.exception("apiwatch: could not sanitize an event")


def drop_report(dropped: int, where: str) -> Event:
    """The event that tells the collector how many events were dropped and why."""
    return make_event(
        "log_events_dropped",
        {"apiwatch.dropped": dropped, "event.reason": where},
        message=f"apiwatch dropped {dropped} events: {where}",
    )
