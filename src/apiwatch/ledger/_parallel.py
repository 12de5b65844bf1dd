"""Hashing a ledger's records into its RFC 6962 tree, with worker processes for large ledgers.

Not API: `apiwatch.ledger.verify` is its user. Verifying hashes every record again (a leaf hash)
and every interior node above them (one more hash per record): two SHA-256 calls per record,
about 1M records/s in one process. A large ledger is cut into chunks of ``2**CHUNK_BITS``
records, aligned to the tree so that a chunk is one complete subtree: a worker process reads
its chunk from the segment files and returns the leaves and every complete subtree inside it,
level by level, as runs of 32-byte hashes (cheap to pickle). Each level of the whole tree is
those runs joined, plus the few nodes above the chunks. The calling process hashes chunks too.

Workers are started with "forkserver" (else "spawn"), never "fork": as `multiprocessing`
requires then, a script that calls `verify_ledger` must guard its top level with
``if __name__ == "__main__":``.

Where a chunk starts in the segment files comes from the offsets indexes, which are derived
data and not trusted: every piece of a chunk must end at a line end, be read whole, and every
chunk but the last must hold exactly ``2**CHUNK_BITS`` records; otherwise the records are hashed
again in one process, which needs no index.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from queue import Empty
from typing import TYPE_CHECKING, NamedTuple

from apiwatch.ledger.errors import LedgerError
from apiwatch.ledger.merkle import HASH_SIZE, MerkleTree, NodeStore
from apiwatch.ledger.segments import Segment, leaf_run, read_offsets

if TYPE_CHECKING:  # ForkServerContext does not exist on Windows
    from multiprocessing.context import ForkServerContext, SpawnContext

__all__ = ["CHUNK_BITS", "PARALLEL_MIN_RECORDS", "HashedRecords", "hash_segments", "tree_levels"]

CHUNK_BITS = 14  # small enough that the work shares out evenly at the end
# Below this many records (by the offsets indexes) a worker's start costs about what it saves:
# measured with bench/ledger_bench.py records on 2 busy cores, one process and two break even
# near 300k records (0.4 s), two are ahead from about 500k.
PARALLEL_MIN_RECORDS = 300_000

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)
_POLL = 0.05  # seconds between checks that the workers still live, while waiting for them
# Workers that may still run after `_run` returned (started late, they find nothing left to
# do), with the shared counter and queue they unpickle on start: freeing those unlinks their
# semaphores, so they are kept until the worker has exited.
_unfinished: list[tuple[BaseProcess, tuple[object, ...]]] = []


def tree_levels(leaves: bytes) -> list[bytes]:
    """Every complete subtree over the run of leaf hashes `leaves`, level by level.

    Level 0 is `leaves`; level ``l`` holds the RFC 6962 interior node
    ``SHA-256(0x01 || left || right)`` over each complete run of ``2**l`` leaves. The levels
    stop at the first one with fewer than two nodes.
    """
    sha = hashlib.sha256
    pair = 2 * HASH_SIZE
    levels = [leaves]
    while len(levels[-1]) >= pair:
        below = levels[-1]
        levels.append(b"".join([sha(b"\x01" + below[i : i + pair]).digest()
                                for i in range(0, len(below) - pair + 1, pair)]))
    return levels


class LevelStore(NodeStore):
    """A read-only `NodeStore` over one run of hashes per level, as `tree_levels` makes them."""

    def __init__(self, levels: Sequence[bytes]) -> None:
        self._levels = levels

    def get(self, level: int, index: int) -> bytes:
        """The stored hash at `level`, `index`; raises `LedgerError` if there is none."""
        if 0 <= index < self.count(level):
            at = index * HASH_SIZE
            return self._levels[level][at : at + HASH_SIZE]
        raise LedgerError(f"no stored node at level {level}, index {index}")

    def count(self, level: int) -> int:
        """How many nodes `level` holds."""
        return len(self._levels[level]) // HASH_SIZE if 0 <= level < len(self._levels) else 0

    def append(self, level: int, digest: bytes) -> None:
        """Refused: the store holds a tree recomputed for checking."""
        raise LedgerError("a recomputed tree is read-only")

    def extend(self, level: int, digests: Sequence[bytes]) -> None:
        """Refused: the store holds a tree recomputed for checking."""
        raise LedgerError("a recomputed tree is read-only")

    def truncate(self, size: int) -> None:
        """Refused: the store holds a tree recomputed for checking."""
        raise LedgerError("a recomputed tree is read-only")


@dataclass(frozen=True)
class HashedRecords:
    """The records of a ledger's segments, hashed."""

    levels: list[bytes]  # `tree_levels` of all the records' leaf hashes
    lines: list[tuple[int, int]]  # per segment: records hashed, bytes of a partial last line

    def tree(self) -> MerkleTree:
        """The RFC 6962 tree over the records, on the levels already hashed."""
        return MerkleTree(LevelStore(self.levels))


class _Piece(NamedTuple):
    """Bytes ``start..stop`` of the log of segment number `segment`."""

    segment: int
    path: str
    start: int
    stop: int
    ends_segment: bool
    torn_is_record: bool  # a partial last line is a record (it is not the last segment)


_Found = tuple[int, int, int]  # per piece: records, bytes of a partial last line, bytes read
_Result = tuple[list[_Found], list[bytes]]  # per chunk: what each piece held, the levels


def _hash_chunk(pieces: Sequence[_Piece]) -> _Result:
    """Hash one chunk (the workers' entry point): what each piece held and the chunk's levels."""
    runs, found = [], []
    for piece in pieces:
        with open(piece.path, "rb") as f:
            f.seek(piece.start)
            data = f.read(piece.stop - piece.start)
        run, partial = leaf_run(data, torn_is_record=piece.torn_is_record)
        runs.append(run)
        found.append((len(run) // HASH_SIZE, partial, len(data)))
    return found, tree_levels(b"".join(runs))


def hash_segments(
    segments: Sequence[Segment], progress: Progress | None = None, *,
    helpers: int | None = None, chunk_bits: int = CHUNK_BITS,
) -> HashedRecords:
    """Hash the records of `segments` (in log order) into the levels of their tree.

    `helpers` worker processes share the work; by default one per other core, and none for
    fewer than `PARALLEL_MIN_RECORDS` records.
    """
    sizes = [s.log.stat().st_size for s in segments]
    plan, hinted = _plan(segments, sizes, 1 << chunk_bits)
    if helpers is None:
        helpers = _other_cores() if hinted >= PARALLEL_MIN_RECORDS else 0
    if helpers > 0 and len(plan) > 1:
        results = _run(plan, helpers, progress, sum(sizes))
        hashed = None if results is None else _assemble(len(segments), plan, results, chunk_bits)
        if hashed is not None:
            return hashed
    return _hash_serially(segments, sizes, progress)


def _other_cores() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) - 1


def _hash_serially(segments: Sequence[Segment], sizes: Sequence[int],
                   progress: Progress | None) -> HashedRecords:
    runs, lines = [], []
    done, total = 0, sum(sizes)
    for n, seg in enumerate(segments):
        data = seg.log.read_bytes()
        run, partial = leaf_run(data, torn_is_record=n < len(segments) - 1)
        runs.append(run)
        lines.append((len(run) // HASH_SIZE, partial))
        done += len(data)
        if progress:
            progress(done, total)
    return HashedRecords(tree_levels(b"".join(runs)), lines)


def _plan(segments: Sequence[Segment], sizes: Sequence[int],
          chunk: int) -> tuple[list[list[_Piece]], int]:
    """The pieces of each chunk by the offsets indexes, and the records they count; no
    chunks if the indexes cannot even be cut into pieces."""
    chunks: list[list[_Piece]] = []
    first = 0  # the segment's first record, by the indexes
    for n, (seg, size) in enumerate(zip(segments, sizes, strict=True)):
        try:
            ends = read_offsets(seg.idx.read_bytes())
        except FileNotFoundError:
            ends = read_offsets(b"")
        starts = [0, *range(-first % chunk or chunk, len(ends), chunk)]  # records of cuts
        bounds = [0, *(ends[k - 1] for k in starts[1:]), size]
        if any(lo > hi for lo, hi in pairwise(bounds)):
            return [], first
        for k, (lo, hi) in zip(starts, pairwise(bounds), strict=True):
            at = (first + k) // chunk
            chunks += [[] for _ in range(at + 1 - len(chunks))]
            last = k == starts[-1]  # the piece ends the segment
            chunks[at].append(_Piece(n, str(seg.log), lo, hi, last,
                                     last and n < len(segments) - 1))
        first += len(ends)
    return chunks, first


def _claim(next_chunk: Synchronized[int], chunks: int) -> int | None:
    """The next chunk nobody has claimed yet, now claimed; None when all are."""
    with next_chunk.get_lock():
        claimed = next_chunk.value
        if claimed >= chunks:
            return None
        next_chunk.value = claimed + 1
        return claimed


def _work(plan: list[list[_Piece]], next_chunk: Synchronized[int],
          results: Queue[tuple[int, _Result]]) -> None:
    """A worker process: hash chunks until none is left unclaimed."""
    while (at := _claim(next_chunk, len(plan))) is not None:
        results.put((at, _hash_chunk(plan[at])))


def _context() -> ForkServerContext | SpawnContext:
    # Not "fork": the caller may run threads (a progress bar, a server) that fork would copy.
    if "forkserver" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


def _run(plan: list[list[_Piece]], helpers: int, progress: Progress | None,
         total: int) -> list[_Result] | None:
    """Hash the chunks of `plan` here and in `helpers` worker processes; None if one fails.

    Chunks are claimed one at a time, so that the work shares out by speed. Workers are started
    from a thread (a start takes 0.1 s or more) while this process hashes: one that starts
    late only takes what is left, maybe nothing, and is not waited for; if none starts, this
    process does it all.
    """
    _unfinished[:] = [(w, shared) for w, shared in _unfinished if w.is_alive()]
    context = _context()
    try:
        next_chunk: Synchronized[int] = context.Value("q", 0)
        results: Queue[tuple[int, _Result]] = context.Queue()
    except OSError:  # no shared semaphores on this system
        return None
    started: list[BaseProcess] = []

    def start() -> None:
        for _ in range(helpers):
            worker = context.Process(target=_work, args=(plan, next_chunk, results), daemon=True)
            try:
                worker.start()
            except Exception:  # whatever stops a start (in a daemon process, out of processes)
                return  # only means fewer helpers: this process hashes what they do not
            started.append(worker)
            _unfinished.append((worker, (next_chunk, results)))

    done: dict[int, _Result] = {}
    size = 0  # bytes hashed

    def finished(at: int, result: _Result) -> None:
        nonlocal size
        done[at] = result
        size += sum(p.stop - p.start for p in plan[at])
        if progress:
            progress(size, total)

    starter = threading.Thread(target=start, name="apiwatch-verify-start")
    starter.start()
    try:
        while (at := _claim(next_chunk, len(plan))) is not None:
            finished(at, _hash_chunk(plan[at]))
            while not results.empty():  # keep the progress moving
                finished(*results.get())
        while len(done) < len(plan):  # chunks the workers hold
            try:
                finished(*results.get(timeout=_POLL))
            except Empty:
                if not (starter.is_alive() or any(w.is_alive() for w in started)):
                    return None  # a worker died holding a chunk
        return [done[at] for at in range(len(plan))]
    finally:
        with next_chunk.get_lock():  # after a failure, leave nothing for the workers to take
            next_chunk.value = len(plan)


def _assemble(segments: int, plan: list[list[_Piece]],
              results: list[_Result],
              chunk_bits: int) -> HashedRecords | None:
    """The levels of the whole tree from the chunks' levels; None if the plan's cuts were not
    at the records the indexes claimed."""
    chunk = 1 << chunk_bits
    lines = [[0, 0] for _ in range(segments)]
    for at, (pieces, (found, _)) in enumerate(zip(plan, results, strict=True)):
        for piece, (records, partial, read) in zip(pieces, found, strict=True):
            if read != piece.stop - piece.start or (partial and not piece.ends_segment):
                return None
            lines[piece.segment][0] += records
            if piece.ends_segment:
                lines[piece.segment][1] = partial
        held = sum(records for records, _, _ in found)
        if held > chunk or (held < chunk and at < len(plan) - 1):
            return None
    joined = [b"".join(levels[level] for _, levels in results if level < len(levels))
              for level in range(chunk_bits + 1)]
    return HashedRecords(joined[:chunk_bits] + tree_levels(joined[chunk_bits]),
                         [(records, partial) for records, partial in lines])
