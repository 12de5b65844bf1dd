"""Builders shared by the ledger storage tests: small ledgers and ways to tamper with them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from apiwatch.ledger.log import Ledger
from apiwatch.ledger.merkle import FileNodeStore, MerkleTree, leaf_hashes
from apiwatch.ledger.note import Verifier
from apiwatch.ledger.segments import list_segments
from apiwatch.ledger.verify import verify_ledger

ORIGIN = "example.com/apiwatch-test"


def record(i: int) -> bytes:
    """A distinct event-like record for index `i`."""
    return b'{"event":{"sequence":%d},"message":"request %d"}' % (i, i)


def make_ledger(path: Path, size: int, checkpoints: tuple[int, ...] = ()) -> Path:
    """A closed ledger of `size` records signed at each size in `checkpoints` (default: size)."""
    with Ledger.create(path, ORIGIN, ORIGIN) as ledger:
        done = 0
        for at in checkpoints or (size,):
            ledger.append_batch([record(i) for i in range(done, at)])
            ledger.checkpoint()
            done = at
        ledger.append_batch([record(i) for i in range(done, size)])
    return path


def log_file(path: Path) -> Path:
    """The (single) segment log of a test ledger."""
    (segment,) = list_segments(path / "segments")
    return segment.log


def records_of(path: Path) -> list[bytes]:
    """The records of the ledger's segment log, as lines."""
    return log_file(path).read_bytes().split(b"\n")[:-1]


def write_records(path: Path, records: list[bytes], *, rebuild_tree: bool = False) -> None:
    """Replace the segment log with `records`; optionally rewrite the tree files to match."""
    log_file(path).write_bytes(b"".join(r + b"\n" for r in records))
    if rebuild_tree:
        for level in (path / "tree").iterdir():
            level.unlink()
        with FileNodeStore(path / "tree") as store:
            MerkleTree(store).extend(leaf_hashes(records))
            store.sync()


def findings(
    path: Path, trusted: bytes | None = None, verifiers: Sequence[Verifier] | None = None
) -> list[tuple[str, int | None]]:
    """(kind, index) of every finding of `verify_ledger` on `path`."""
    result = verify_ledger(path, trusted=trusted, verifiers=verifiers)
    return [(f.kind, f.index) for f in result.findings]
