"""The `Ledger`: append-only records, their RFC 6962 tree, and signed C2SP checkpoints.

Each record is the exact bytes of an encoded event, stored as one line of a segment file
(`apiwatch.ledger.segments`); its leaf hash ``SHA-256(0x00 || record)`` extends an incremental
Merkle tree whose nodes are stored (`FileNodeStore`), so proofs never rescan the log. A
checkpoint is signed only after the records and the tree are on disk.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from apiwatch.ledger.checkpoint import Checkpoint, sign_checkpoint
from apiwatch.ledger.errors import LedgerError, StorageError
from apiwatch.ledger.keys import Keyring
from apiwatch.ledger.layout import (
    CHECKPOINTS_DIR,
    KEYS_DIR,
    LEDGER_FILE,
    SEGMENTS_DIR,
    TREE_DIR,
    LedgerSettings,
    checkpoint_files,
    claimed_checkpoint,
    read_latest,
    write_checkpoint,
)
from apiwatch.ledger.merkle import FileNodeStore, leaf_hashes
from apiwatch.ledger.note import Signer
from apiwatch.ledger.recovery import RecoveryReport, reconcile_tree, repair_segments
from apiwatch.ledger.segments import SegmentStore

__all__ = ["Ledger"]

LOCK_FILE = "ledger.lock"


def signed_size(directory: Path) -> int:
    """The largest size any stored checkpoint claims (signatures unchecked), 0 if none."""
    claimed = [read_latest(directory)] + [p.read_bytes() for _, p in checkpoint_files(directory)]
    sizes = [cp.size for msg in claimed if msg and (cp := claimed_checkpoint(msg))]
    return max(sizes, default=0)


def _lock_directory(directory: Path) -> int:
    """Hold an exclusive lock on the ledger for this process: one writer, ever."""
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LedgerError(f"{directory} is open in another process") from None
    return fd


class Ledger:
    """An open ledger directory; safe for one writer shared by many threads (one lock)."""

    def __init__(self, directory: Path, settings: LedgerSettings) -> None:
        """Open files as they are; use `Ledger.open`, which recovers from a crash first."""
        self.directory = directory
        self.settings = settings
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()  # one `sync_through` at a time
        self._lock_fd = _lock_directory(directory)
        report = repair_segments(directory / SEGMENTS_DIR, signed_size(directory))
        self._segments = SegmentStore(
            directory / SEGMENTS_DIR, roll_size=settings.roll_size, durable=settings.durable
        )
        self._store = FileNodeStore(directory / TREE_DIR)
        self._tree, dropped, added = reconcile_tree(self._store, self._segments)
        self.recovery = RecoveryReport(
            bytes_cut=report.bytes_cut,
            after_index=report.after_index,
            index_dropped=report.index_dropped,
            index_added=report.index_added,
            leaves_dropped=dropped,
            leaves_added=added,
        )
        latest = read_latest(directory)
        cp = claimed_checkpoint(latest) if latest else None
        self._signed_size = cp.size if cp else 0
        self._synced = self._segments.size  # records below are durable (recovery synced them)
        self._signed_at: float | None = None  # monotonic time of our last checkpoint

    @classmethod
    def create(cls, directory: str | Path, origin: str, key_name: str, **settings: Any) -> Ledger:
        """Make a new ledger in `directory`, signing with its keyring.

        The keyring is created with a fresh key named `key_name` unless `apiwatch keys
        generate` made one already. `settings` are `LedgerSettings` fields (roll_size,
        durable, checkpoint_records, ...).
        """
        path = Path(directory)
        if (path / LEDGER_FILE).exists():
            raise LedgerError(f"{path} already holds a ledger")
        try:
            config = LedgerSettings(origin=origin, **settings)
        except TypeError as exc:
            raise LedgerError(f"invalid ledger setting: {exc}") from None
        for sub in (SEGMENTS_DIR, TREE_DIR, CHECKPOINTS_DIR):
            (path / sub).mkdir(parents=True, exist_ok=True)
        if not Keyring.exists(path / KEYS_DIR):
            Keyring.create(path / KEYS_DIR, key_name)
        config.save(path)
        return cls(path, config)

    @classmethod
    def open(cls, directory: str | Path, **policies: Any) -> Ledger:
        """Open an existing ledger, repairing a crash's leftovers (see `recovery`).

        `policies` (roll_size, durable, checkpoint_records, checkpoint_seconds) replace the
        stored ones from now on and are saved; the origin, part of every checkpoint, is fixed.
        """
        path = Path(directory)
        stored = LedgerSettings.load(path)
        if "origin" in policies:
            raise LedgerError("a ledger's origin is fixed when it is created")
        try:
            settings = replace(stored, **policies)
        except TypeError as exc:
            raise LedgerError(f"invalid ledger setting: {exc}") from None
        ledger = cls(path, settings)
        if settings != stored:
            settings.save(path)  # under the directory lock `cls` took
        return ledger

    @property
    def size(self) -> int:
        """The number of records."""
        return self._tree.size

    def append(self, record: bytes) -> int:
        """Append one record (no newline inside); return its index."""
        return self.append_batch([record])

    def append_batch(self, records: Sequence[bytes], *, sync: bool = True) -> int:
        """Append records in order; return the first one's index.

        With the durable policy (default) the records are fsynced before this returns, unless
        `sync` is False: then `sync_through` makes them durable, together with whatever other
        threads appended meanwhile (group commit).
        """
        with self._lock:
            first = self._segments.append_batch(records, sync=sync)
            self._tree.extend(leaf_hashes(records))
            return first

    def sync_through(self, index: int) -> None:
        """Return once record `index` and all before it are durable (durable policy only).

        One fsync covers every record appended before it started, so threads that appended
        while another was syncing mostly find their records durable already. StorageError if
        the disk refuses.
        """
        if not self.settings.durable:
            return
        with self._sync_lock:
            if index < self._synced:
                return
            with self._lock:
                target = self.size
                fd = self._segments.tail_log_fd()  # earlier segments were synced on rolling
            try:
                os.fdatasync(fd)
            except OSError as exc:
                raise StorageError(f"ledger sync failed: {exc.strerror or exc}") from None
            finally:
                os.close(fd)
            self._synced = target

    def read(self, index: int) -> bytes:
        """The record at `index`."""
        with self._lock:
            return self._segments.read(index)

    def read_range(self, start: int, stop: int) -> list[bytes]:
        """Records ``start..stop-1``."""
        with self._lock:
            return self._segments.read_range(start, stop)

    def root(self, size: int | None = None) -> bytes:
        """The tree's root hash at `size` (default: now)."""
        with self._lock:
            return self._tree.root(size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 6962 audit path of record `index` in the tree of `size` records."""
        with self._lock:
            return self._tree.inclusion_proof(index, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 6962 consistency proof between tree sizes `size1` and `size2`."""
        with self._lock:
            return self._tree.consistency_proof(size1, size2)

    def _signers(self) -> list[Signer]:
        # The keyring is read again each time, so a `keys rotate` applies without a restart.
        ring = Keyring.load(self.directory / KEYS_DIR)
        witness = ring.witness_signer()
        return ring.signers() + ([witness] if witness else [])

    def checkpoint(self, now: float | None = None) -> bytes:
        """Sign the current state now (records and tree synced first); the signed note.

        Every active key signs, and the keyring's witness key cosigns if it has one.
        """
        with self._lock:
            self._segments.sync()
            self._store.sync()
            size = self._tree.size
            cp = Checkpoint(self.settings.origin, size, self._tree.root())
            msg = sign_checkpoint(cp, self._signers())
            write_checkpoint(self.directory, size, msg)
            self._signed_size = size
            self._signed_at = time.monotonic() if now is None else now
            return msg

    def maybe_checkpoint(self, now: float | None = None) -> bytes | None:
        """Sign if there are new records and enough of them or enough time has passed.

        `now` is a `time.monotonic()` reading. The first call after opening signs any new
        records at once (an unsigned tail left by a restart is not kept waiting).
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            new = self._tree.size - self._signed_size
            due = (
                self._signed_at is None
                or new >= self.settings.checkpoint_records
                or now - self._signed_at >= self.settings.checkpoint_seconds
            )
        return self.checkpoint(now) if new > 0 and due else None

    def latest_checkpoint(self) -> bytes | None:
        """The newest signed checkpoint's note, or None."""
        return read_latest(self.directory)

    def close(self) -> None:
        """Sync and close the files."""
        with self._lock:
            self._segments.close()
            self._store.sync()
            self._store.close()
            os.close(self._lock_fd)  # releases the flock

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
