"""The local spool: append-only segment files of encoded events awaiting the collector.

Events are written by one thread in batches, fsynced per batch by default, into the active
segment; a segment is closed ("ready") when it holds `segment_events` events or when the
shipper asks for what there is. The shipper deletes a segment only after the collector
acknowledged it. A torn last line (the process died mid-write) is cut on open and counted. The
total size is capped: beyond it `append` refuses and the caller counts the drop.

The writer and the shipper may be two processes (`apiwatch.capture.writer`): appending and
rolling hold an advisory lock on the directory's `lock` file, the writer starts a new segment
when its active one was rolled under it, and the writer's idea of the total size is corrected
from the directory whenever it would refuse a batch (the shipper's deletions happen elsewhere).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from apiwatch.errors import ApiwatchError

ACTIVE_SUFFIX = ".active"
READY_SUFFIX = ".jsonl"
REJECTED_DIR = "rejected"
LOCK_FILE = "lock"


class SpoolFull(ApiwatchError):
    """The spool reached its disk cap; the batch was not written."""


@dataclass
class SpoolStats:
    """Counters a user can read from the capture side (and that ship as events)."""

    torn_bytes_cut: int = 0
    quarantined_segments: int = 0


class Spool:
    """Append-only, crash-safe segments under `directory`; one writer thread, one shipper."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        segment_events: int = 500,
        fsync: bool = True,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_events = segment_events
        self.fsync = fsync
        self.stats = SpoolStats()
        directory.mkdir(parents=True, exist_ok=True)
        segments = self._segments()
        self._bytes = sum(p.stat().st_size for p in segments)
        self._last_number = max((int(p.stem) for p in segments), default=0)
        self._active: Path | None = None
        self._active_events = 0
        # The writer thread appends while the shipper rolls and acknowledges.
        self._lock = threading.Lock()
        # A writer process forked while the shipper held the lock must not inherit it held.
        os.register_at_fork(after_in_child=_renew_lock(weakref.ref(self)))
        for path in sorted(directory.glob("*" + ACTIVE_SUFFIX)):
            self._recover(path)

    def _segments(self) -> list[Path]:
        return [
            p
            for p in self.directory.iterdir()
            if p.suffix in (ACTIVE_SUFFIX, READY_SUFFIX) and p.is_file()
        ]

    def _recover(self, path: Path) -> None:
        """Cut a torn last line and close the segment: it is shipped like any other."""
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            with path.open("r+b") as fh:
                fh.truncate(keep)
                os.fsync(fh.fileno())
            self.stats.torn_bytes_cut += len(data) - keep
            self._bytes -= len(data) - keep
        if keep == 0:
            path.unlink()
        else:
            path.rename(path.with_suffix(READY_SUFFIX))

    @property
    def size_bytes(self) -> int:
        """Bytes currently held (active and ready segments), read from the directory."""
        return self._disk_bytes()

    def _disk_bytes(self) -> int:
        total = 0
        for path in self._segments():
            with contextlib.suppress(FileNotFoundError):  # acknowledged meanwhile
                total += path.stat().st_size
        return total

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Opened per use: a lock taken through a descriptor shared with a forked process would
        # not keep that process out.
        with self._lock:
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def append(self, lines: Sequence[bytes]) -> None:
        """Write encoded events (no trailing newlines); raises SpoolFull past the cap."""
        data = b"\n".join(lines) + b"\n"
        with self._locked():
            self._append(data, len(lines))

    def _append(self, data: bytes, count: int) -> None:
        if self._bytes + len(data) > self.max_bytes:
            self._bytes = self._disk_bytes()
            if self._bytes + len(data) > self.max_bytes:
                raise SpoolFull(f"spool at {self._bytes} of {self.max_bytes} bytes")
        if self._active is not None and not self._active.exists():
            self._active = None  # rolled by the shipper's process
        if self._active is None:
            # Names number segments in creation order, which is sequence order.
            self._last_number += 1
            self._active = self.directory / f"{self._last_number:020d}{ACTIVE_SUFFIX}"
            self._active_events = 0
        with self._active.open("ab") as fh:
            fh.write(data)
            if self.fsync:
                fh.flush()
                os.fsync(fh.fileno())
        self._bytes += len(data)
        self._active_events += count
        if self._active_events >= self.segment_events:
            self._roll()

    def roll(self) -> None:
        """Close the active segment, whichever process writes it, so the shipper can send it."""
        with self._locked():
            for path in self.directory.glob("*" + ACTIVE_SUFFIX):
                path.rename(path.with_suffix(READY_SUFFIX))
            self._active = None

    def _roll(self) -> None:
        if self._active is not None:
            self._active.rename(self._active.with_suffix(READY_SUFFIX))
            self._active = None

    def ready(self) -> list[Path]:
        """Closed segments, oldest (lowest sequence) first."""
        return sorted(self.directory.glob("*" + READY_SUFFIX))

    def acknowledge(self, path: Path) -> None:
        """The collector holds this segment: delete it."""
        size = path.stat().st_size
        path.unlink()
        with self._lock:
            self._bytes -= size

    def quarantine(self, path: Path) -> Path:
        """The collector refused this segment for good: keep it aside, never delete it."""
        target_dir = self.directory / REJECTED_DIR
        target_dir.mkdir(exist_ok=True)
        size = path.stat().st_size
        target = target_dir / path.name
        path.rename(target)
        with self._lock:
            self._bytes -= size
        self.stats.quarantined_segments += 1
        return target


def _renew_lock(ref: weakref.ref[Spool]) -> Callable[[], None]:
    def renew() -> None:
        spool = ref()
        if spool is not None:
            spool._lock = threading.Lock()

    return renew
