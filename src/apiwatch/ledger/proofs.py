"""Verification of RFC 6962 inclusion and consistency proofs.

The algorithms are RFC 9162 sections 2.1.3.2 (inclusion) and 2.1.4.2 (consistency), which
verify the proofs RFC 6962 section 2.1 defines. Edge cases follow transparency-dev/merkle:
a consistency proof from size 0 is meaningless and rejected; between equal sizes the proof must
be empty and the roots equal. Every failure raises `ProofError` saying why; success returns None.
"""

from __future__ import annotations

from collections.abc import Sequence

from apiwatch.ledger.errors import ProofError
from apiwatch.ledger.merkle import HASH_SIZE, node_hash

__all__ = ["verify_consistency", "verify_inclusion"]


def _check_hashes(proof: Sequence[bytes], **named: bytes) -> None:
    # Roots are not checked: a root of the wrong length simply never matches a computed one
    # (transparency-dev accepts equal sizes with equal roots of any length, and so do we).
    for name, digest in named.items():
        if len(digest) != HASH_SIZE:
            raise ProofError(f"{name} is {len(digest)} bytes, not {HASH_SIZE}")
    for i, digest in enumerate(proof):
        if len(digest) != HASH_SIZE:
            raise ProofError(f"proof hash {i} is {len(digest)} bytes, not {HASH_SIZE}")


def _shift_while_even(fn: int, sn: int) -> tuple[int, int]:
    """Right-shift both until fn's low bit is set or fn is 0 (the RFC's repeated step)."""
    while fn and not fn & 1:
        fn >>= 1
        sn >>= 1
    return fn, sn


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf hash `leaf` is at `index` in the tree of `size` leaves with `root`."""
    _check_hashes(proof, leaf=leaf)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, digest = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            raise ProofError(f"proof has {len(proof)} hashes, more than the path is long")
        if fn & 1 or fn == sn:
            digest = node_hash(sibling, digest)
            fn, sn = _shift_while_even(fn, sn)
        else:
            digest = node_hash(digest, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"proof has {len(proof)} hashes, fewer than the path is long")
    if digest != root:
        raise ProofError(f"leaf {index} does not lead to the root of size {size}")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of `size2` leaves, `root2`, extends the one of `size1`, `root1`."""
    if size1 <= 0:
        raise ProofError(f"a consistency proof needs a first size above 0, got {size1}")
    if size2 < size1:
        raise ProofError(f"the second size {size2} is smaller than the first {size1}")
    if size1 == size2:
        if proof:
            raise ProofError("the sizes are equal, so the proof must be empty")
        if root1 != root2:
            raise ProofError(f"two different roots for the same size {size1}")
        return
    _check_hashes(proof)
    if not proof:
        raise ProofError(f"empty consistency proof from size {size1} to {size2}")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is itself a node of the path
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"proof has {len(proof)} hashes, more than the path is long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            fn, sn = _shift_while_even(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"proof has {len(proof)} hashes, fewer than the path is long")
    if fr != root1:
        raise ProofError(f"the proof does not lead to the root of size {size1}")
    if sr != root2:
        raise ProofError(f"the proof does not lead to the root of size {size2}")
