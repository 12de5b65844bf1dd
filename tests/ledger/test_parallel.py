"""Hashing a ledger in worker processes gives what hashing it in one process gives."""

from __future__ import annotations

from array import array
from functools import partial
from pathlib import Path

import pytest
from ledger_factory import ORIGIN, record

from apiwatch.ledger import _parallel, verify
from apiwatch.ledger._parallel import HashedRecords, hash_segments, tree_levels
from apiwatch.ledger.log import Ledger
from apiwatch.ledger.merkle import MemoryNodeStore, MerkleTree, leaf_hashes, root_of
from apiwatch.ledger.segments import list_segments, read_offsets
from apiwatch.ledger.verify import verify_ledger

CHUNK_BITS = 3  # chunks of 8 records, so that a small ledger has many


def _ledger(path: Path, size: int = 100) -> Path:
    """A ledger of `size` records in segments of about 7 records, signed at 40 and `size`."""
    with Ledger.create(path, ORIGIN, ORIGIN, roll_size=350, durable=False) as ledger:
        ledger.append_batch([record(i) for i in range(40)])
        ledger.checkpoint()
        ledger.append_batch([record(i) for i in range(40, size)])
        ledger.checkpoint()
    return path


def _hash(path: Path, helpers: int) -> HashedRecords:
    segments = list_segments(path / "segments")
    return hash_segments(segments, helpers=helpers, chunk_bits=CHUNK_BITS)


def _in_workers(path: Path, monkeypatch: pytest.MonkeyPatch) -> HashedRecords:
    """`_hash` with a worker, failing if it falls back to hashing in one process."""

    def refuse(*args: object) -> HashedRecords:
        raise AssertionError("fell back to one process")

    with monkeypatch.context() as patch:
        patch.setattr(_parallel, "_hash_serially", refuse)
        return _hash(path, helpers=1)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 7, 8, 9, 64, 65, 100])
def test_tree_levels_hold_every_complete_subtree(size: int) -> None:
    """Each level holds the nodes a `MerkleTree` stores, and the tree on them has the RFC root."""
    leaves = leaf_hashes(record(i) for i in range(size))
    store = MemoryNodeStore()
    MerkleTree(store).extend(leaves)
    levels = tree_levels(b"".join(leaves))
    for level, run in enumerate(levels):
        assert run == b"".join(store.get(level, i) for i in range(store.count(level)))
    assert store.count(len(levels)) == 0
    assert HashedRecords(levels, []).tree().root() == root_of(leaves)


def test_workers_give_the_levels_of_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks cut across many segments are hashed by a worker into the same levels."""
    path = _ledger(tmp_path / "ledger")
    assert len(list_segments(path / "segments")) > 10
    assert _in_workers(path, monkeypatch) == _hash(path, helpers=0)


def test_torn_lines_are_counted_as_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A torn line in a middle segment is a record, a torn last line is not, in both ways."""
    path = _ledger(tmp_path / "ledger")
    segments = list_segments(path / "segments")
    for seg in (segments[5], segments[-1]):
        seg.log.write_bytes(seg.log.read_bytes()[:-3])
    serial = _hash(path, helpers=0)
    assert serial.lines[5][1] > 0
    assert serial.lines[-1][1] > 0
    assert _in_workers(path, monkeypatch) == serial


@pytest.mark.parametrize("lie", ["next record", "mid-line", "short"])
def test_a_lying_offsets_index_falls_back_to_one_process(tmp_path: Path, lie: str) -> None:
    """Chunk cuts taken from rewritten indexes are caught and the records hashed in order."""
    path = _ledger(tmp_path / "ledger")
    serial = _hash(path, helpers=0)
    for seg in list_segments(path / "segments"):
        ends = read_offsets(seg.idx.read_bytes())
        if lie == "next record":  # cuts at line ends, but one record off
            ends = ends[1:] + ends[-1:]
        elif lie == "mid-line":
            ends = array("Q", [e - 1 for e in ends])
        else:
            ends = ends[:-2]
        seg.idx.write_bytes(ends.tobytes())
    assert _hash(path, helpers=1) == serial


@pytest.mark.parametrize("tamper", ["none", "modify", "delete", "tear"])
def test_verify_finds_the_same_with_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tamper: str
) -> None:
    """`verify_ledger` reports the same findings whether workers hash the records or not."""
    path = _ledger(tmp_path / "ledger")
    seg = list_segments(path / "segments")[4]
    lines = seg.log.read_bytes().split(b"\n")
    if tamper == "modify":
        lines[1] = lines[1].replace(b"request", b"REQUEST")
    elif tamper == "delete":
        del lines[2]
    elif tamper == "tear":
        lines[-1] = b'{"partial'
    seg.log.write_bytes(b"\n".join(lines))
    alone = verify_ledger(path)
    monkeypatch.setattr(_parallel, "PARALLEL_MIN_RECORDS", 0)
    monkeypatch.setattr(verify, "hash_segments", partial(hash_segments, chunk_bits=CHUNK_BITS))
    assert verify_ledger(path) == alone
    assert alone.ok == (tamper == "none")
