"""The one path every event takes into the collector, whatever brought it.

HTTP ingest, the syslog receiver and `apiwatch ingest` all call `Pipeline.ingest`: events are
re-sanitized (a source is never trusted), stamped with the source identity and the receiving
time, sorted into new events and duplicates by sequence number, appended to the ledger (durable
before this returns), indexed in the store, then handed to the listeners (detection). The index
store and the sequence state are derived from the ledger: after a crash `recover` replays the
ledger's tail into both, so nothing acknowledged is ever missing from them.
"""

from __future__ import annotations

import operator
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path
from typing import Any, cast

import orjson

from apiwatch.collector.indexer import IndexerProcess, ledger_chunks
from apiwatch.collector.sources import SourceTracker
from apiwatch.errors import DecodeError
from apiwatch.events import Event, format_timestamp, make_event
from apiwatch.formats._text import json_line
from apiwatch.formats.ecs import compact_lines, encode_ecs, in_spec_order
from apiwatch.formats.jsonl import decode_batch
from apiwatch.ledger.log import Ledger
from apiwatch.sanitize import Sanitizer
from apiwatch.sanitize.fastpath import FieldChecks
from apiwatch.store import Store, StoreError

_key_ends: Callable[[bytes], int]
try:
    from apiwatch.formats._json_bytes import key_ends as _key_ends
except ImportError:  # built without a C compiler: the same count, byte by byte
    _key_ends = operator.methodcaller("count", b'":')

#: The source name of events the collector writes about itself (refusals, gaps).
SELF_SOURCE = "apiwatch"
#: The fields the collector stamps on every received event.
STAMP_FIELDS = frozenset({"apiwatch.source", "apiwatch.tenant", "event.ingested"})
#: Event shapes remembered by `Pipeline._verbatim_shape`; a source that varies its keys
#: cannot grow the table past this.
_MAX_SHAPES = 1024
_UNSEEN: Any = object()
SNAPSHOT_NAME = "sources.json"

#: Called with each stored batch, in ledger order: the first event's ledger index, the events.
Listener = Callable[[int, Sequence[Event]], None]


@dataclass(frozen=True)
class _Staged:
    """A batch appended to the ledger by `Pipeline._stage`, not yet durable nor handed over."""

    accepted: int
    duplicates: int
    batch: list[Event]
    appended: tuple[int, list[bytes]] | None  # first ledger index and records


@dataclass(frozen=True)
class IngestResult:
    """What a batch came to: new events stored, repeats ignored, the ledger range used."""

    accepted: int
    duplicates: int
    first_index: int | None


#: In a line with no backslash, a space before a colon is the one way a key's `":` can go
#: uncounted (`_verbatim`); the same bytes inside a string only cost an encode. A pattern, not
#: `in`: the regex engine skips to each space with memchr, three times faster here.
_SPACED_COLON = re.compile(rb" :")
_FIRST_BYTE = operator.itemgetter(0)
_LAST_BYTE = operator.itemgetter(-1)


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
        # An inline insert failed: the store may lack ledger records from its committed
        # maximum on, which `_catch_up_inline` puts back before the next batch.
        self._store_behind = False
        self._snapshot_path = state_dir / SNAPSHOT_NAME
        self._lock = threading.Lock()
        # Appended batches are handed to the store and listeners in ledger order (`_publish`).
        self._turn = threading.Condition()
        self._published = ledger.size
        self.tracker = SourceTracker()
        # `_verbatim_shape` by event shape (the tuple of an event's keys).
        self._shapes: dict[tuple[str, ...], FieldChecks | None] = {}

    def ingest(
        self,
        source: str,
        events: Sequence[Event],
        received_ns: int | None = None,
        *,
        wait: bool = True,
        lines: Sequence[bytes] | None = None,
    ) -> IngestResult:
        """Store a batch from `source`; returns once the new events are durable and indexed.

        `lines`, when given, are the JSON lines the events were decoded from by
        `formats.jsonl.decode_line` (same order): a line that is already clean is recorded as
        it came, with the stamps appended, instead of being encoded again (`_verbatim`).
        `wait=False` returns once they are durable (in the ledger), leaving the indexer process
        to catch up: for bulk loads that acknowledge nothing per batch; `flush` waits.
        """
        with self._lock:
            staged = self._stage(source, events, received_ns, lines)
        return self._finish(staged, wait)

    def ingest_json(
        self,
        source: str,
        lines: Sequence[bytes],
        numbers: Sequence[int] | None = None,
        *,
        partial: bool = False,
    ) -> tuple[IngestResult | None, list[DecodeError]]:
        """Decode JSON lines (`formats.jsonl.decode_batch`, numbered `numbers`, by default
        from 1) and store the batch.

        Returns the result and the errors of the lines that could not be decoded. With any
        bad line nothing is stored (the result is None) unless `partial`: then the good ones
        are. Decoding runs under the pipeline's lock like the rest of a batch's CPU work, so
        that concurrent batches go through one after the other: shared round robin would
        finish them all late and together, leaving the indexer idle, then the pipeline.
        """
        with self._lock:
            decoded, shape = decode_batch(lines, numbers)
            # Every line decoded: known when they all have one shape, else one C-level pass.
            if shape is not None or set(map(type, decoded)) == {dict}:
                events, good, bad = cast("list[Event]", decoded), lines, []
            else:
                bad = [item for item in decoded if isinstance(item, DecodeError)]
                events = [item for item in decoded if not isinstance(item, DecodeError)]
                good = [line for line, item in zip(lines, decoded, strict=True)
                        if not isinstance(item, DecodeError)]
            if bad and not partial:
                return None, bad
            if not events:
                return IngestResult(0, 0, None), bad
            staged = self._stage(source, events, None, good, shape)
        return self._finish(staged, True), bad

    def _stage(
        self,
        source: str,
        events: Sequence[Event],
        received_ns: int | None,
        lines: Sequence[bytes] | None,
        shape: tuple[str, ...] | None = None,
    ) -> _Staged:
        """Sanitize, stamp, admit and append a batch (not yet synced); under `_lock`.
        `shape`, when known, is the keys of every one of `events`, in order."""
        now = time.time_ns() if received_ns is None else received_ns
        received = format_timestamp(now)
        tenant = self.tenants.get(source)
        stamps: Event = {"apiwatch.source": source, "event.ingested": received}
        if tenant:
            stamps["apiwatch.tenant"] = tenant
        # The stamps as they end a record: `{...,"apiwatch.source":"s","event.ingested":"t"}`.
        tail = b"," + json_line(stamps)[1:-1]
        records: dict[int, bytes] = {}
        stamped: list[Event] = []
        if self.enrich is not None:
            lines = None  # enrichment adds fields: every event is encoded again
        # One byte-level look at the whole batch; if anything in it looks odd, line by line.
        clean = unspaced = None
        if lines:
            joined = b"\n".join(lines)
            clean = True if self.sanitize.lines_clean(lines, joined) else None
            # Most batches hold no space at all: one memchr-speed test spares the pattern.
            unspaced = True if b" " not in joined or not _SPACED_COLON.search(joined) else None
        # Lines that become the records as they are, with the stamps appended: the source's,
        # or for events made here (`apiwatch ingest`, syslog) their encoding, made once.
        whole: Sequence[bytes] | None = None
        if lines and clean and unspaced and self._verbatim_batch(events, lines, joined, shape):
            whole = lines
        elif lines is None and self.enrich is None:
            whole = self._own_lines(events)
        made: list[bytes] | None = None  # the records of `whole`, in order
        if whole is not None:
            made = [line[:-1] + tail for line in whole]
            stamped = list(events)
            list(map(dict.update, stamped, repeat(stamps)))  # each event stamped, in C
        else:
            # Per event, its keys and whether its fields are clean.
            verdicts = self.sanitize.fields_verdicts(
                events, list(map(len, lines)), self._verbatim_shape, decoded=True
            ) if lines else None
            for position, raw in enumerate(events):
                if lines and verdicts and self._verbatim(
                    lines[position], clean, unspaced, verdicts[position]
                ):
                    records[id(raw)] = lines[position][:-1] + tail
                    event = raw
                else:
                    event = self.sanitize(raw if self.enrich is None else self.enrich(raw))
                event.update(stamps)
                stamped.append(event)
        admission = self.tracker.admit(source, stamped)
        batch = [self._gap_event(source, first, last, now) for first, last in admission.gaps]
        batch.extend(admission.new)
        if made is not None and not admission.gaps and len(admission.new) == len(stamped):
            encoded = made  # every event admitted, in order: the batch is `stamped` itself
        else:
            if made is not None:
                records = dict(zip(map(id, stamped), made, strict=True))
            encoded = [records.get(id(e)) or encode_ecs(e)[:-1] for e in batch]
        appended = self._append(batch, encoded) if batch else None
        self.tracker.commit(admission, now)
        return _Staged(len(admission.new), admission.duplicates, batch, appended)

    def _finish(self, staged: _Staged, wait: bool) -> IngestResult:
        """Make a staged batch durable and hand it over; with `wait`, until it is indexed."""
        if staged.appended is None:
            if staged.duplicates and wait:
                self._heal()
            return IngestResult(0, staged.duplicates, None)
        first, encoded = staged.appended
        self._publish(first, staged.batch, encoded)
        if wait:
            self._indexed(first + len(staged.batch) - 1)
        return IngestResult(staged.accepted, staged.duplicates, first)

    def _verbatim(
        self,
        line: bytes,
        clean: bool | None,
        unspaced: bool | None,
        verdict: tuple[tuple[str, ...], bool],
    ) -> bool:
        """Whether `line` with the stamps appended is a record of the stamped event.

        True for a flat line of the decoded event's own keys, in the order the encoder
        writes, that the sanitizer would not change and that holds no stamp field. The record
        is then the line as the source wrote it: byte for byte what encoding would write when
        the source's encoder is compact like ours (orjson), the same JSON value otherwise.
        As the line has no backslash, every `"` in it delimits a string, and with no space
        before a colon every key ends in `":`; a value may add one (`":x"`), nothing can hide
        one: the count equals the event's number of fields only when every key is distinct,
        so a repeated key (which another reader might resolve the other way), a nested object
        or a field filled in by the decoder sends the event to the encoder. `clean=True` and
        `unspaced=True`: the batch's lines passed `Sanitizer.lines_clean` and have no
        `_SPACED_COLON`, all of them. `verdict` is the event's keys and whether its fields are
        clean (`Sanitizer.fields_verdicts` with `_verbatim_shape`'s checks, so never for a shape
        that `_verbatim_shape` refuses).
        """
        shape, fields_clean = verdict
        return (
            fields_clean
            and line[:1] == b"{"
            and line[-1:] == b"}"
            and (unspaced or not _SPACED_COLON.search(line))
            and (clean or self.sanitize.bytes_clean(line))
            and line.count(b'":') == len(shape)
        )

    def _verbatim_batch(
        self,
        events: Sequence[Event],
        lines: Sequence[bytes],
        joined: bytes,
        shape: tuple[str, ...] | None,
    ) -> bool:
        """`_verbatim` of every event of a batch whose lines all passed the batch checks
        (`clean` and `unspaced`), in C-level calls over the batch (`joined` is the lines
        joined by line feeds); False if any fails, or if the events differ in shape (then they
        are judged one by one). The `":` count is taken over the whole batch: as every line
        holds one per key of its event at least (see `_verbatim`), the total is the number of
        keys times the lines only if each line's count is exactly its number of keys. `shape`,
        if the decoder knows it, is the keys of every event, in order."""
        if shape is None:
            shape = tuple(events[0])
            if list(chain.from_iterable(events)) != list(shape) * len(events):
                return False
        checks = self._verbatim_shape(shape)
        return (
            checks is not None
            and set(map(_FIRST_BYTE, lines)) == {ord("{")}
            and set(map(_LAST_BYTE, lines)) == {ord("}")}
            and _key_ends(joined) == len(shape) * len(lines)
            and self.sanitize.fields_clean_batch(
                events, max(map(len, lines)), checks, decoded=True
            )
        )

    def _own_lines(self, events: Sequence[Event]) -> list[bytes] | None:
        """The ECS JSON of each of `events` (`encode_ecs` without its line feed) when the
        sanitizer would leave every one of them as it is (`Sanitizer.encoded_clean`) and none
        holds a stamp field; else None, and they are sanitized one by one."""
        if any(map(STAMP_FIELDS.intersection, events)):
            return None
        lines = compact_lines(events)
        return lines if lines and self.sanitize.encoded_clean(events, lines) else None

    def _verbatim_shape(self, shape: tuple[str, ...]) -> FieldChecks | None:
        """What `_verbatim` needs of events of keys `shape`: the sanitizer's `field_checks`,
        or None when a line of that shape is never recorded as it came (keys out of the
        encoder's order, or a stamp field given by the source). Remembered per shape."""
        checks = self._shapes.get(shape, _UNSEEN)
        if checks is not _UNSEEN:
            return cast("FieldChecks | None", checks)
        checks = (
            self.sanitize.field_checks(shape)
            if in_spec_order(shape) and STAMP_FIELDS.isdisjoint(shape)
            else None
        )
        if len(self._shapes) >= _MAX_SHAPES:
            self._shapes.clear()
        self._shapes[shape] = checks
        return checks

    def record(self, event: Event) -> int:
        """Store an event the collector raises itself (a refused request, say)."""
        return self.record_batch([event])

    def record_batch(self, events: Sequence[Event]) -> int:
        """Store events the collector raises itself in one append (one fsync); the first
        one's ledger index."""
        received = format_timestamp(time.time_ns())
        clean = []
        for event in events:
            event["apiwatch.source"] = SELF_SOURCE
            event["event.ingested"] = received
            clean.append(self.sanitize(event))
        with self._lock:
            first, records = self._append(clean, [encode_ecs(e)[:-1] for e in clean])
        self._publish(first, clean, records)
        self._indexed(first + len(clean) - 1)
        return first

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

    def _append(self, batch: list[Event], records: list[bytes]) -> tuple[int, list[bytes]]:
        """Write the `records` of `batch` (one each, in order) to the ledger (not yet synced);
        the first one's index and the records."""
        return self.ledger.append_batch(records, sync=False), records

    def _publish(self, first: int, batch: list[Event], records: list[bytes]) -> None:
        """Make an appended batch durable, then hand it to the store and the listeners.

        Outside the pipeline's lock, so that while one batch is fsynced the next ones are
        appended, and one fsync covers them all (group commit). The hand-over goes in ledger
        order, one batch at a time: the indexer's answer names the highest index committed.
        """
        try:
            self.ledger.sync_through(first + len(batch) - 1)
        finally:
            # Even when the sync fails: the batch is in the ledger's files, and the store and
            # the listeners must see every record, in order, or later batches would wait here.
            with self._turn:
                while self._published < first:
                    self._turn.wait()
                try:
                    self._hand_over(first, batch, records)
                finally:
                    self._published = first + len(batch)
                    self._turn.notify_all()

    def _hand_over(self, first: int, batch: list[Event], records: list[bytes]) -> None:
        indexer = self.indexer
        try:
            if indexer is None:
                self._insert_inline(first, list(enumerate(batch, start=first)), records)
            else:
                if indexer.failed:
                    # Everything before `first` was handed to the old child: catch up to here.
                    indexer.restart(first, self.ledger.read_range)
                indexer.submit(first, records)
        finally:
            # The batch is in the ledger whatever the store did: detection sees it once (a
            # retry of a refused batch is a duplicate), as it does beside an indexer process.
            for listener in self.listeners:
                listener(first, batch)

    def _insert_inline(
        self, first: int, indexed: list[tuple[int, Event]], records: list[bytes]
    ) -> None:
        """Insert a batch into the store from this process, after what it lacks."""
        if self._store_behind:
            self._catch_up_inline(first)
        try:
            self.store.insert(indexed, encoded=records)
        except StoreError:
            self._store_behind = True
            raise

    def _catch_up_inline(self, stop: int) -> None:
        """Insert again from the ledger the records after the store's committed maximum, up
        to `stop`: a failed inline insert rolls back the store's whole open transaction,
        batches acknowledged before it too. Until this succeeds nothing newer is inserted, so
        the store stays a prefix of the ledger, which a restart's `recover` fills."""
        self._store_behind = True  # until the store has them all
        highest = self.store.max_ledger_index()
        start = 0 if highest is None else highest + 1
        for first, records in ledger_chunks(self.ledger.read_range, start, stop):
            self.store.insert_records(first, records)
        self._store_behind = False

    def _heal(self) -> None:
        """Bring an index store that failed up to every batch handed over, then wait for it
        (StoreError while it still fails). For a batch that is all duplicates: the retry of
        one the store refused has nothing to hand over, yet is acknowledged, so it must be
        indexed by then."""
        with self._turn:
            published = self._published
            indexer = self.indexer
            if indexer is None:
                # Whatever `_store_behind` says: the failure may have been reported to another
                # caller (the store's commit timer, a metrics read), so look at the store.
                self._catch_up_inline(published)
            elif indexer.failed:
                indexer.restart(published, self.ledger.read_range)
        self._indexed(published - 1)

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
