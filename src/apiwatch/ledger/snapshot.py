"""A read-only view of a ledger at its latest signed checkpoint, safe beside a running writer.

Evidence is wanted while the collector runs. Everything at or below the latest signed size is
immutable and on disk (the writer fsyncs records and tree before it signs), so a reader needs
no lock: it reads records through the segment index files and proofs from the stored tree
nodes, capped at the signed size, and never writes.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path

from apiwatch.ledger.checkpoint import Checkpoint
from apiwatch.ledger.errors import LedgerError, ProofError
from apiwatch.ledger.layout import SEGMENTS_DIR, TREE_DIR, claimed_checkpoint, read_latest
from apiwatch.ledger.merkle import HASH_SIZE, MerkleTree, NodeStore, leaf_hash, level_file
from apiwatch.ledger.proofs import verify_inclusion
from apiwatch.ledger.segments import list_segments, read_offsets

_OFFSET = 8  # bytes per entry of a segment's .idx file (an end offset)


class _SignedNodes(NodeStore):
    """The stored tree nodes of the first `size` leaves, read with pread; writes refused."""

    def __init__(self, directory: Path, size: int) -> None:
        self._dir = directory
        self._size = size
        self._fds: dict[int, int] = {}

    def get(self, level: int, index: int) -> bytes:
        fd = self._fds.get(level)
        if fd is None:
            fd = self._fds[level] = os.open(self._dir / level_file(level), os.O_RDONLY)
        digest = os.pread(fd, HASH_SIZE, index * HASH_SIZE)
        if len(digest) != HASH_SIZE:
            raise LedgerError(f"tree level {level} ends before node {index}: run apiwatch verify")
        return digest

    def count(self, level: int) -> int:
        return self._size >> level

    def append(self, level: int, digest: bytes) -> None:
        raise LedgerError("a ledger snapshot is read-only")

    def extend(self, level: int, digests: Sequence[bytes]) -> None:
        raise LedgerError("a ledger snapshot is read-only")

    def truncate(self, size: int) -> None:
        raise LedgerError("a ledger snapshot is read-only")

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


class LedgerSnapshot:
    """Records and inclusion proofs of a ledger directory at its latest signed checkpoint."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        path = Path(directory)
        signed = read_latest(path)
        checkpoint = claimed_checkpoint(signed) if signed else None
        if signed is None or checkpoint is None:
            raise LedgerError(
                f"{path} has no signed checkpoint yet (a running collector signs one every "
                "few seconds)"
            )
        self.signed: bytes = signed
        self.checkpoint: Checkpoint = checkpoint
        self._nodes = _SignedNodes(path / TREE_DIR, checkpoint.size)
        self._tree = MerkleTree(self._nodes)
        self._segments = list_segments(path / SEGMENTS_DIR)
        self._firsts = [s.first for s in self._segments]

    @property
    def size(self) -> int:
        """The signed size: records 0..size-1 can be read and proven."""
        return self.checkpoint.size

    def read(self, index: int) -> bytes:
        """Record `index` (without its newline)."""
        if not 0 <= index < self.size:
            raise LedgerError(f"record {index} is not covered by the latest checkpoint "
                              f"(size {self.size})")
        seg = self._segments[bisect_right(self._firsts, index) - 1]
        k = index - seg.first
        with seg.idx.open("rb") as idx:
            idx.seek((k - 1) * _OFFSET if k else 0)
            ends = read_offsets(idx.read(_OFFSET * (2 if k else 1)))
        start, end = (ends[0], ends[1]) if k else (0, ends[0])
        with seg.log.open("rb") as log:
            log.seek(start)
            return log.read(end - start - 1)

    def proven(self, index: int) -> tuple[bytes, list[bytes]]:
        """Record `index` and its audit path at the signed size, checked against the root.

        Raises LedgerError if they do not verify: the record or the stored tree was altered, and
        a bundle built from them would not verify either.
        """
        data = self.read(index)
        proof = self._tree.inclusion_proof(index, self.size)
        try:
            verify_inclusion(leaf_hash(data), index, self.size, proof, self.checkpoint.root_hash)
        except ProofError:
            raise LedgerError(f"record {index} or the stored tree was altered: "
                              "run apiwatch verify") from None
        return data, proof

    def close(self) -> None:
        """Release the open tree files."""
        self._nodes.close()

    def __enter__(self) -> LedgerSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
