"""Crash recovery when a ledger opens: cut a torn last record, rebuild what derives from the log.

The segment log is the truth. A crash can leave the last segment with a partial record (no
trailing newline), its offsets index ahead of or behind the log, and the stored Merkle nodes
ahead of or behind the records. `repair_segments` cuts the partial record and rewrites the
index tail from the log's own newlines; `reconcile_tree` drops extra leaves and hashes missing
ones. Complete records are never cut, and a log holding fewer records than a signed checkpoint
covers is refused (`LedgerError`), not repaired: that is for `apiwatch verify` to explain.
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from apiwatch.ledger.errors import LedgerError
from apiwatch.ledger.merkle import FileNodeStore, MerkleTree, leaf_hashes
from apiwatch.ledger.segments import SegmentStore, list_segments, read_offsets

__all__ = ["RecoveryReport", "line_ends", "reconcile_tree", "repair_segments"]

# Records hashed per step when the tree is behind the log (bounds memory).
_REHASH_CHUNK = 1 << 16


@dataclass(frozen=True)
class RecoveryReport:
    """What opening a ledger had to repair; all zero when it was closed cleanly."""

    bytes_cut: int = 0  # bytes of a partial last record removed from the log
    after_index: int = -1  # the cut bytes followed this record (-1: the log's start)
    index_dropped: int = 0  # offsets index entries that named no complete record
    index_added: int = 0  # offsets index entries rebuilt from the log
    leaves_dropped: int = 0  # stored tree leaves beyond the records
    leaves_added: int = 0  # tree leaves hashed from records the tree lacked

    @property
    def clean(self) -> bool:
        """True when nothing had to be repaired."""
        return self == RecoveryReport(after_index=self.after_index)

    def __str__(self) -> str:
        if self.clean:
            return "ledger was closed cleanly"
        parts = []
        if self.bytes_cut:
            parts.append(
                f"cut a torn record of {self.bytes_cut} bytes after record {self.after_index}"
            )
        if self.index_dropped or self.index_added:
            parts.append(
                f"offsets index: dropped {self.index_dropped}, rebuilt {self.index_added}"
            )
        if self.leaves_dropped or self.leaves_added:
            parts.append(f"tree: dropped {self.leaves_dropped} leaves, "
                         f"hashed {self.leaves_added} missing leaves")
        return "; ".join(parts)


def line_ends(data: bytes, base: int = 0) -> array[int]:
    """End offsets (after each newline) of the complete lines in `data`, plus `base`."""
    lines = data.split(b"\n")[:-1]
    ends = array("Q", accumulate((len(line) + 1 for line in lines), initial=base))
    return ends[1:]


def repair_segments(directory: Path, signed_size: int) -> RecoveryReport:
    """Make the last segment's log end on a newline and its index match the log.

    Raises `LedgerError`, before changing anything, if fewer than `signed_size` records
    (the largest signed checkpoint) would remain.
    """
    segments = list_segments(directory)
    if not segments:
        if signed_size:
            raise LedgerError(f"the ledger holds no records but a checkpoint signs {signed_size}")
        return RecoveryReport()
    last = segments[-1]
    log = last.log.read_bytes()
    keep = log.rfind(b"\n") + 1
    actual = line_ends(log[:keep])
    try:
        raw_index = last.idx.read_bytes()
    except FileNotFoundError:
        raw_index = b""
    stored = read_offsets(raw_index)
    same = 0
    for a, b in zip(actual, stored, strict=False):
        if a != b:
            break
        same += 1
    count = last.first + len(actual)
    if count < signed_size:
        raise LedgerError(
            f"the ledger holds {count} records but a signed checkpoint covers {signed_size}: "
            f"records {count}..{signed_size - 1} are missing; run `apiwatch verify`"
        )
    report = RecoveryReport(
        bytes_cut=len(log) - keep,
        after_index=count - 1,
        index_dropped=len(stored) - same,
        index_added=len(actual) - same,
    )
    if report.bytes_cut:
        _truncate(last.log, keep)
    if len(raw_index) != len(actual) * 8 or report.index_dropped:
        _truncate(last.idx, same * 8)
        with last.idx.open("ab") as f:
            f.write(actual[same:].tobytes())
            f.flush()
            os.fsync(f.fileno())
    return report


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def reconcile_tree(
    store: FileNodeStore, segments: SegmentStore
) -> tuple[MerkleTree, int, int]:
    """Bring the stored tree to exactly the records; returns (tree, dropped, hashed) leaves."""
    tree = MerkleTree(store)  # which itself repairs levels above 0 from level 0
    size = segments.size
    dropped = max(0, tree.size - size)
    if dropped:
        store.truncate(size)
        tree = MerkleTree(store)
    added = size - tree.size
    for start in range(tree.size, size, _REHASH_CHUNK):
        tree.extend(leaf_hashes(segments.read_range(start, min(size, start + _REHASH_CHUNK))))
    if added:
        store.sync()
    return tree, dropped, added
