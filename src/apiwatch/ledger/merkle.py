"""RFC 6962 Merkle tree hashing and an incremental tree over stored complete subtrees.

Hashes follow RFC 6962 section 2.1 (also RFC 9162 section 2.1.1): a leaf is
``SHA-256(0x00 || data)``, an interior node ``SHA-256(0x01 || left || right)``, and the empty
tree's root is ``SHA-256("")``. Proofs are the RFC's ``PATH`` (inclusion, section 2.1.1) and
``PROOF``/``SUBPROOF`` (consistency, section 2.1.2).

`MerkleTree` keeps no leaves in memory: every *complete* subtree's hash is appended to a
`NodeStore` (level 0 holds the leaf hashes, level ``l`` the nodes over ``2**l`` leaves), so a root
at any past size and any proof is a handful of O(log n) reads, and an append hashes only the
nodes it completes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol

from apiwatch.ledger.errors import LedgerError

_Batch = Callable[[Sequence[bytes]], list[bytes]]
_native_leaves: _Batch | None
_native_nodes: _Batch | None
try:
    from apiwatch.ledger._batch import leaf_hashes as _native_leaves
    from apiwatch.ledger._batch import node_hashes as _native_nodes
except ImportError:  # built without a C compiler or OpenSSL's headers: hashlib does it
    _native_leaves = _native_nodes = None

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "FileNodeStore",
    "MemoryNodeStore",
    "MerkleTree",
    "NodeStore",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "node_hashes",
    "root_of",
]

HASH_SIZE = 32
_sha256 = hashlib.sha256
EMPTY_ROOT = _sha256(b"").digest()
_NODE_PREFIX = _sha256(b"\x01")
# Levels are numbered 0..63 at most: a tree of 2**63 leaves is far beyond any real log.
_MAX_LEVELS = 64


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of one leaf: ``SHA-256(0x00 || data)``."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def leaf_hashes(records: Iterable[bytes]) -> list[bytes]:
    """`leaf_hash` of each of `records`: the hot path of every append and verification, in
    one C call (`_batch.c`, OpenSSL, without the GIL) where it is built."""
    batch = records if isinstance(records, list | tuple) else list(records)
    if _native_leaves is None:
        return _leaf_hashes_py(batch)
    return _native_leaves(batch)


def node_hashes(nodes: Sequence[bytes]) -> list[bytes]:
    """`node_hash` of each pair of `nodes` (left, right, left, right...; a list or tuple of
    even length), as `leaf_hashes` in one call."""
    if _native_nodes is None:
        return _node_hashes_py(nodes)
    return _native_nodes(nodes)


def _leaf_hashes_py(records: Sequence[bytes]) -> list[bytes]:
    """`leaf_hashes` by hashlib: the reference the C module must agree with."""
    sha = _sha256
    return [sha(b"\x00" + record).digest() for record in records]


def _node_hashes_py(nodes: Sequence[bytes]) -> list[bytes]:
    """`node_hashes` by hashlib: the reference the C module must agree with."""
    if len(nodes) % 2:
        raise ValueError("nodes come in pairs: an even number is needed")
    # Each node hash starts from a copy of a context that has hashed the 0x01 prefix:
    # cheaper than a new context per node (a third less time per node here).
    interior = _NODE_PREFIX.copy
    parents = []
    for left, right in zip(nodes[::2], nodes[1::2], strict=True):
        node = interior()
        node.update(left)
        node.update(right)
        parents.append(node.digest())
    return parents


def root_of(leaves: Sequence[bytes]) -> bytes:
    """Reference ``MTH(D[n])`` computed recursively from leaf hashes (tests, small sets)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2): RFC 6962's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


class NodeStore(Protocol):
    """Hashes of complete subtrees, append-only per level.

    ``get(level, index)`` is the node covering leaves ``[index * 2**level, (index+1) * 2**level)``.
    """

    def get(self, level: int, index: int) -> bytes:
        """The stored hash at `level`, `index`; raises `LedgerError` if there is none."""
        ...

    def append(self, level: int, digest: bytes) -> None:
        """Store the next node of `level`."""
        ...

    def extend(self, level: int, digests: Sequence[bytes]) -> None:
        """Store the next nodes of `level` in order (the batch path of `append`)."""
        ...

    def count(self, level: int) -> int:
        """How many nodes `level` holds."""
        ...

    def truncate(self, size: int) -> None:
        """Cut every level back to the nodes a tree of `size` leaves has (``size >> level``)."""
        ...


class MemoryNodeStore(NodeStore):
    """A `NodeStore` in lists, one per level."""

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = []

    def _level(self, level: int) -> list[bytes]:
        while len(self._levels) <= level:
            self._levels.append([])
        return self._levels[level]

    def get(self, level: int, index: int) -> bytes:
        """The stored hash at `level`, `index`; raises `LedgerError` if there is none."""
        if 0 <= level < len(self._levels) and 0 <= index < len(self._levels[level]):
            return self._levels[level][index]
        raise LedgerError(f"no stored node at level {level}, index {index}")

    def append(self, level: int, digest: bytes) -> None:
        """Store the next node of `level`."""
        self._level(level).append(digest)

    def extend(self, level: int, digests: Sequence[bytes]) -> None:
        """Store the next nodes of `level` in order."""
        self._level(level).extend(digests)

    def count(self, level: int) -> int:
        """How many nodes `level` holds."""
        return len(self._levels[level]) if level < len(self._levels) else 0

    def truncate(self, size: int) -> None:
        """Cut every level back to ``size >> level`` nodes."""
        for level, nodes in enumerate(self._levels):
            del nodes[size >> level :]


def level_file(level: int) -> str:
    """The file name of a tree level in a `FileNodeStore` directory."""
    return f"level-{level:02d}.bin"


class FileNodeStore(NodeStore):
    """A `NodeStore` on disk: ``level-NN.bin`` per level, each a run of 32-byte hashes.

    Appends go to an in-memory buffer per level; `flush` writes them, `sync` also fsyncs. A crash
    can leave levels out of step or a torn last hash; a torn hash is cut on open and
    `MerkleTree` repairs the rest from level 0 (see `MerkleTree.__init__`).
    """

    # Buffers are written out once they hold this many bytes, to bound memory between syncs.
    _FLUSH_AT = 1 << 20

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._fds: list[int] = []
        self._disk: list[int] = []  # hashes on disk, per level
        self._buf: list[bytearray] = []
        self._unsynced: set[int] = set()  # levels written since the last fsync
        self._created = False
        while len(self._fds) < _MAX_LEVELS and self._path(len(self._fds)).exists():
            self._open(len(self._fds))

    @staticmethod
    def read_level(directory: str | os.PathLike[str], level: int) -> bytes:
        """The whole hashes of `level` in the store under `directory`, in one read (b"" if none).

        Read-only, unlike opening a store: nothing is created and a torn last hash is left on
        disk (it is not part of the result).
        """
        try:
            data = (Path(directory) / level_file(level)).read_bytes()
        except FileNotFoundError:
            return b""
        return data[: len(data) - len(data) % HASH_SIZE]

    def _path(self, level: int) -> Path:
        return self._dir / level_file(level)

    def _open(self, level: int) -> None:
        """Open level files up to `level`, creating missing ones; cut a torn trailing hash."""
        while len(self._fds) <= level:
            path = self._path(len(self._fds))
            self._created |= not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            size = os.fstat(fd).st_size
            if size % HASH_SIZE:
                os.ftruncate(fd, size - size % HASH_SIZE)
            self._fds.append(fd)
            self._disk.append(size // HASH_SIZE)
            self._buf.append(bytearray())

    def get(self, level: int, index: int) -> bytes:
        """The stored hash at `level`, `index`; raises `LedgerError` if there is none."""
        if 0 <= level < len(self._fds) and index >= 0:
            disk = self._disk[level]
            if index < disk:
                digest = os.pread(self._fds[level], HASH_SIZE, index * HASH_SIZE)
            else:
                offset = (index - disk) * HASH_SIZE
                digest = bytes(self._buf[level][offset : offset + HASH_SIZE])
            if len(digest) == HASH_SIZE:
                return digest
        raise LedgerError(f"no stored node at level {level}, index {index} in {self._dir}")

    def append(self, level: int, digest: bytes) -> None:
        """Buffer the next node of `level`."""
        if level >= len(self._fds):
            self._open(level)
        buf = self._buf[level]
        buf += digest
        if len(buf) >= self._FLUSH_AT:
            self._flush_level(level)

    def extend(self, level: int, digests: Sequence[bytes]) -> None:
        """Buffer the next nodes of `level` in order."""
        if level >= len(self._fds):
            self._open(level)
        buf = self._buf[level]
        buf += b"".join(digests)
        if len(buf) >= self._FLUSH_AT:
            self._flush_level(level)

    def count(self, level: int) -> int:
        """How many nodes `level` holds, written or buffered."""
        if level >= len(self._fds):
            return 0
        return self._disk[level] + len(self._buf[level]) // HASH_SIZE

    def _flush_level(self, level: int) -> None:
        buf = self._buf[level]
        view = memoryview(buf)
        while view:
            view = view[os.write(self._fds[level], view) :]
        view.release()
        self._unsynced.add(level)
        self._disk[level] += len(buf) // HASH_SIZE
        buf.clear()

    def flush(self) -> None:
        """Write every buffered node to its level file (no fsync)."""
        for level in range(len(self._fds)):
            if self._buf[level]:
                self._flush_level(level)

    def sync(self) -> None:
        """Write buffered nodes and fsync the level files written since the last sync.

        The tree is derived data (it can be rebuilt from the leaves), so a caller that keeps its
        leaves durably elsewhere may `flush` instead and leave syncing to the OS.
        """
        self.flush()
        for level in sorted(self._unsynced):
            os.fsync(self._fds[level])
        self._unsynced.clear()
        if self._created:
            dir_fd = os.open(self._dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._created = False

    def truncate(self, size: int) -> None:
        """Cut every level back to ``size >> level`` nodes, durably."""
        self.flush()
        for level, fd in enumerate(self._fds):
            keep = size >> level
            if self._disk[level] > keep:
                os.ftruncate(fd, keep * HASH_SIZE)
                os.fsync(fd)
                self._disk[level] = keep

    def close(self) -> None:
        """Flush and close the level files; the store is unusable afterwards."""
        self.flush()
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        self._unsynced.clear()
        self._disk.clear()
        self._buf.clear()

    def __enter__(self) -> FileNodeStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class MerkleTree:
    """An append-only RFC 6962 tree over a `NodeStore`; its size is the store's leaf count.

    Appends cost O(log n) (amortised O(1) hashes); roots at any size up to the current one and
    inclusion/consistency proofs are computed from stored complete subtrees, never by rescanning
    leaves.
    """

    def __init__(self, store: NodeStore) -> None:
        self._store = store
        self._size = store.count(0)
        self._repair()
        size = self._size
        # frontier[l]: the last node of level l while it waits for a right sibling, else b"".
        self._frontier: list[bytes] = [
            store.get(level, (size >> level) - 1) if (size >> level) & 1 else b""
            for level in range(size.bit_length())
        ]

    def _repair(self) -> None:
        """Bring levels 1.. in step with level 0 after a crash between level writes."""
        store, size = self._store, self._size
        if any(store.count(level) > size >> level for level in range(1, _MAX_LEVELS)):
            store.truncate(size)
        for level in range(1, size.bit_length()):
            below = level - 1
            missing = range(store.count(level), size >> level)
            if missing:
                store.extend(
                    level,
                    [
                        node_hash(store.get(below, 2 * i), store.get(below, 2 * i + 1))
                        for i in missing
                    ],
                )

    @property
    def size(self) -> int:
        """The number of leaves."""
        return self._size

    def append(self, leaf: bytes) -> int:
        """Append one leaf *hash* (see `leaf_hash`) and return its index."""
        if len(leaf) != HASH_SIZE:
            raise LedgerError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf)}")
        store, frontier = self._store, self._frontier
        index = self._size
        store.append(0, leaf)
        digest, level, n = leaf, 0, index
        while n & 1:  # the node at this level completes its parent
            digest = node_hash(frontier[level], digest)
            frontier[level] = b""
            level += 1
            n >>= 1
            store.append(level, digest)
        if level == len(frontier):
            frontier.append(digest)
        else:
            frontier[level] = digest
        self._size = index + 1
        return index

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaf hashes at once, hashing each level's new pairs in one pass."""
        nodes = list(leaves)
        if not nodes:
            return
        if set(map(len, nodes)) != {HASH_SIZE}:
            raise LedgerError(f"every leaf hash must be {HASH_SIZE} bytes")
        store, frontier = self._store, self._frontier
        before = self._size
        self._size = before + len(nodes)
        frontier.extend([b""] * (self._size.bit_length() - len(frontier)))
        store.extend(0, nodes)
        level, count = 0, before  # count: nodes of `level` before this batch
        while True:
            if count & 1:
                nodes.insert(0, frontier[level])
            frontier[level] = nodes[-1] if len(nodes) & 1 else b""
            if len(nodes) < 2:
                return
            nodes = node_hashes(nodes[: len(nodes) & ~1])  # an odd last waits
            level += 1
            count >>= 1
            store.extend(level, nodes)

    def root(self, size: int | None = None) -> bytes:
        """The root hash at `size` leaves (default: now); any past size is O(log n)."""
        if size is None or size == self._size:
            root = b""
            for digest in self._frontier:
                if digest:
                    root = node_hash(digest, root) if root else digest
            return root or EMPTY_ROOT
        self._check_size(size)
        return self._range_hash(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 6962 ``PATH(index, D[size])``: the audit path of leaf `index` at tree `size`."""
        self._check_size(size)
        if not 0 <= index < size:
            raise LedgerError(f"leaf index {index} is outside a tree of size {size}")
        proof = []
        lo, hi = 0, size
        while hi - lo > 1:  # the RFC recursion, top down; the path lists siblings bottom up
            k = _split(hi - lo)
            if index < lo + k:
                proof.append(self._range_hash(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._range_hash(lo, lo + k))
                lo += k
        proof.reverse()
        return proof

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 6962 ``PROOF(size1, D[size2])``; empty when size1 is 0 or equals size2."""
        self._check_size(size2)
        if not 0 <= size1 <= size2:
            raise LedgerError(f"no consistency proof from size {size1} to size {size2}")
        proof: list[bytes] = []
        if size1 in (0, size2):
            return proof
        lo, hi, whole = 0, size2, True  # whole: SUBPROOF's flag b (still the original subtree)
        while hi != size1:
            k = _split(hi - lo)
            if size1 <= lo + k:
                proof.append(self._range_hash(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._range_hash(lo, lo + k))
                lo += k
                whole = False
        if not whole:
            proof.append(self._range_hash(lo, hi))
        proof.reverse()
        return proof

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise LedgerError(f"tree size {size} is outside 0..{self._size}")

    def _range_hash(self, lo: int, hi: int) -> bytes:
        """``MTH(D[lo:hi])`` for a subtree of the RFC recursion (lo aligned to its width)."""
        get = self._store.get
        width = hi - lo
        parts = []
        for level in range(width.bit_length() - 1, -1, -1):
            if width >> level & 1:
                parts.append(get(level, lo >> level))
                lo += 1 << level
        root = parts.pop()
        while parts:
            root = node_hash(parts.pop(), root)
        return root
