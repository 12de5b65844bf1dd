"""Append-only segment files: one record per line, and an offsets index per segment.

A segment is ``<first-index>.log`` (records, each followed by ``\\n``) with ``<first-index>.idx``
beside it: one little-endian unsigned 64-bit *end* offset per record (the byte after its
newline), so record ``i`` is two ``pread`` calls away whatever the ledger's size. Segments roll
once they reach the configured size. The log is the truth; the index is derived from it and
`apiwatch.ledger.recovery` rebuilds it after a crash.
"""

from __future__ import annotations

import operator
import os
import sys
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from apiwatch.ledger.errors import LedgerError, StorageError
from apiwatch.ledger.merkle import leaf_hashes

_line_feeds: Callable[[bytes], int]
try:
    from apiwatch.ledger._batch import line_feeds as _line_feeds
except ImportError:  # built without a C compiler: the same count, byte by byte
    _line_feeds = operator.methodcaller("count", b"\n")

__all__ = [
    "DEFAULT_ROLL_SIZE",
    "RecordError",
    "Segment",
    "SegmentStore",
    "fsync_directory",
    "leaf_run",
    "list_segments",
    "read_offsets",
]

DEFAULT_ROLL_SIZE = 64 << 20
_OFFSET = 8  # bytes per index entry
# Read file descriptors kept open at once; a long ledger has many sealed segments.
_MAX_READERS = 32
_SPLIT_BLOCK = 1 << 18  # bytes of records split at once by `leaf_run`


class RecordError(LedgerError):
    """A record cannot be stored as one line (it contains a newline)."""


@dataclass(frozen=True)
class Segment:
    """One segment's paths and the global index of its first record."""

    first: int
    log: Path
    idx: Path


def leaf_run(data: bytes, *, torn_is_record: bool) -> tuple[bytes, int]:
    """The leaf hashes of the lines of segment bytes `data`, as one run of 32-byte hashes.

    Also returns the length of a partial last line (no newline), which is hashed as a record
    only if `torn_is_record`.
    """
    end = data.rfind(b"\n") + 1
    runs: list[bytes] = []
    start = 0
    while start < end:
        # Split a block at a time: the records of a block stay in cache until they are hashed,
        # where splitting all of `data` at once allocates and faults in its size again.
        stop = data.find(b"\n", start + _SPLIT_BLOCK, end) + 1 or end
        runs.append(b"".join(leaf_hashes(data[start : stop - 1].split(b"\n"))))
        start = stop
    if torn_is_record and end < len(data):
        runs += leaf_hashes([data[end:]])
    return b"".join(runs), len(data) - end


def list_segments(directory: Path) -> list[Segment]:
    """The segments under `directory`, in index order (no file is opened)."""
    if not directory.is_dir():
        return []
    firsts = sorted(int(p.stem) for p in directory.glob("*.log") if p.stem.isdigit())
    return [_segment(directory, first) for first in firsts]


def _segment(directory: Path, first: int) -> Segment:
    return Segment(first, directory / f"{first:020d}.log", directory / f"{first:020d}.idx")


def read_offsets(data: bytes) -> array[int]:
    """Decode an index file's bytes (whole entries only) into end offsets."""
    offsets = array("Q")
    offsets.frombytes(data[: len(data) - len(data) % _OFFSET])
    if sys.byteorder != "little":  # pragma: no cover - the file format is little-endian
        offsets.byteswap()
    return offsets


def _encode_offsets(offsets: array[int]) -> bytes:
    if sys.byteorder != "little":  # pragma: no cover - the file format is little-endian
        offsets = array("Q", offsets)
        offsets.byteswap()
    return offsets.tobytes()


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_directory(directory: Path) -> None:
    """Make a file creation or rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SegmentStore:
    """The records of a ledger in rolling segment files; not thread-safe (the `Ledger` locks).

    Open it only on consistent files (`apiwatch.ledger.recovery.recover` makes them so).
    """

    def __init__(self, directory: Path, *, roll_size: int = DEFAULT_ROLL_SIZE,
                 durable: bool = True) -> None:
        if roll_size < 1:
            raise LedgerError(f"segment roll size must be positive, got {roll_size}")
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self._roll_size = roll_size
        self._durable = durable
        self._segments = list_segments(directory)
        self._firsts = [s.first for s in self._segments]
        self._readers: dict[Path, int] = {}
        self._dirty = False  # written since the last fsync
        if not self._segments:
            self._segments.append(_segment(directory, 0))
            self._firsts.append(0)
        for seg, nxt in zip(self._segments, self._segments[1:], strict=False):
            count = seg.idx.stat().st_size // _OFFSET
            if seg.first + count != nxt.first:
                raise LedgerError(
                    f"segment {seg.log.name} ends at record {seg.first + count} but the next "
                    f"segment starts at {nxt.first}: run `apiwatch verify`"
                )
        self._open_tail(self._segments[-1])

    def _open_tail(self, seg: Segment) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        created = not seg.log.exists()
        self._log_fd = os.open(seg.log, flags, 0o644)
        self._idx_fd = os.open(seg.idx, flags, 0o644)
        if created:
            fsync_directory(self._dir)
        self._tail_bytes = os.fstat(self._log_fd).st_size
        self._tail_count = os.fstat(self._idx_fd).st_size // _OFFSET

    @property
    def size(self) -> int:
        """The number of records."""
        return self._segments[-1].first + self._tail_count

    def append_batch(self, records: Sequence[bytes], *, sync: bool = True) -> int:
        """Append `records` (one write per segment touched); return the first one's index.

        A durable store fsyncs the log before returning unless `sync` is False (the caller
        syncs later, see `tail_log_fd`).

        If the disk refuses a write (full, say), whatever the batch wrote is cut off again and
        StorageError is raised: the store is as before the call, and usable once there is room.
        """
        first = self.size
        if not records:
            return first
        data = b"\n".join([*records, b""])  # not `join(...) + b"\n"`: a second copy
        if _line_feeds(data) != len(records):
            bad = next(i for i, r in enumerate(records) if b"\n" in r)
            raise RecordError(f"record {bad} of the batch contains a newline; records are lines")
        before = (len(self._segments), self._tail_bytes, self._tail_count)
        try:
            self._write_batch(records, data, sync)
        except OSError as exc:
            self._undo(*before)
            raise StorageError(f"ledger write failed: {exc.strerror or exc}") from None
        return first

    def _undo(self, segments: int, tail_bytes: int, tail_count: int) -> None:
        """Cut the files back to a state recorded before a failed batch."""
        while len(self._segments) > segments:  # drop segments the batch rolled into
            os.close(self._log_fd)
            os.close(self._idx_fd)
            seg = self._segments.pop()
            self._firsts.pop()
            seg.log.unlink(missing_ok=True)
            seg.idx.unlink(missing_ok=True)
            self._open_tail(self._segments[-1])
        os.ftruncate(self._log_fd, tail_bytes)
        os.ftruncate(self._idx_fd, tail_count * _OFFSET)
        self._tail_bytes, self._tail_count = tail_bytes, tail_count

    def _write_batch(self, records: Sequence[bytes], data: bytes, sync: bool) -> None:
        # ends[k]: where record k would start in the open segment if it all fitted there.
        ends = array("Q", accumulate((len(r) + 1 for r in records), initial=self._tail_bytes))
        view, origin = memoryview(data), ends[0]
        start = 0  # records[start:] are still to write
        while start < len(records):
            room = self._roll_size - self._tail_bytes
            stop = bisect_right(ends, ends[start] + room, lo=start + 1) - 1
            if stop == start:  # the next record does not fit
                if self._tail_bytes:
                    self._roll()
                    continue
                stop = start + 1  # an oversized record gets a segment of its own
            chunk = ends[start + 1 : stop + 1]
            shift = self._tail_bytes - ends[start]  # non-zero after a roll inside this batch
            if shift:
                chunk = array("Q", (e + shift for e in chunk))
            _write_all(self._log_fd, view[ends[start] - origin : ends[stop] - origin])
            _write_all(self._idx_fd, _encode_offsets(chunk))
            self._tail_bytes += ends[stop] - ends[start]
            self._tail_count += stop - start
            start = stop
        self._dirty = True
        if self._durable and sync:
            # The log alone: it is the truth, and recovery rebuilds the tail segment's offsets
            # index from it; the index is synced with the log on roll, checkpoint and close.
            os.fdatasync(self._log_fd)

    def _roll(self) -> None:
        self.sync()
        os.close(self._log_fd)
        os.close(self._idx_fd)
        seg = _segment(self._dir, self.size)
        self._segments.append(seg)
        self._firsts.append(seg.first)
        self._open_tail(seg)

    def tail_log_fd(self) -> int:
        """A duplicate of the open segment's log descriptor (the caller closes it), to fsync
        appended records without holding up further appends."""
        return os.dup(self._log_fd)

    def sync(self) -> None:
        """fsync the open segment's log and index if anything was written since the last sync."""
        if self._dirty:
            os.fdatasync(self._log_fd)
            os.fdatasync(self._idx_fd)
            self._dirty = False

    def _locate(self, index: int) -> tuple[Segment, int]:
        if not 0 <= index < self.size:
            raise LedgerError(f"record {index} is outside 0..{self.size - 1}")
        seg = self._segments[bisect_right(self._firsts, index) - 1]
        return seg, index - seg.first

    def _reader(self, path: Path) -> int:
        fd = self._readers.get(path)
        if fd is None:
            if len(self._readers) >= _MAX_READERS:
                self._close_readers()
            fd = self._readers[path] = os.open(path, os.O_RDONLY)
        return fd

    def _close_readers(self) -> None:
        for fd in self._readers.values():
            os.close(fd)
        self._readers.clear()

    def _span(self, seg: Segment, lo: int, hi: int) -> tuple[int, array[int]]:
        """Start offset of record `lo` of `seg` and the end offsets of records lo..hi-1."""
        at = (lo - 1) * _OFFSET if lo else 0
        raw = os.pread(self._reader(seg.idx), (hi - lo + (lo > 0)) * _OFFSET, at)
        offsets = read_offsets(raw)
        if lo:
            return offsets[0], offsets[1:]
        return 0, offsets

    def read(self, index: int) -> bytes:
        """Record `index`, without its newline."""
        seg, k = self._locate(index)
        start, (end,) = self._span(seg, k, k + 1)
        return os.pread(self._reader(seg.log), end - start - 1, start)

    def read_range(self, start: int, stop: int) -> list[bytes]:
        """Records ``start..stop-1`` (one read per segment touched)."""
        if not 0 <= start <= stop <= self.size:
            raise LedgerError(f"record range {start}..{stop} is outside 0..{self.size}")
        out: list[bytes] = []
        while start < stop:
            seg, k = self._locate(start)
            i = bisect_right(self._firsts, start)
            seg_stop = min(stop, self._firsts[i] if i < len(self._firsts) else stop)
            lo, ends = self._span(seg, k, k + seg_stop - start)
            data = os.pread(self._reader(seg.log), ends[-1] - lo, lo)
            out.extend(data[:-1].split(b"\n"))
            start = seg_stop
        return out

    def close(self) -> None:
        """Sync and close every file."""
        self.sync()
        os.close(self._log_fd)
        os.close(self._idx_fd)
        self._close_readers()
