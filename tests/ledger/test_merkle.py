"""The incremental Merkle tree against the recursive RFC 6962 definition, in memory and on disk."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apiwatch.ledger.errors import LedgerError, ProofError
from apiwatch.ledger.merkle import (
    EMPTY_ROOT,
    FileNodeStore,
    MemoryNodeStore,
    MerkleTree,
    NodeStore,
    leaf_hash,
    root_of,
)
from apiwatch.ledger.proofs import verify_consistency, verify_inclusion


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(8, "big")) for i in range(n)]


def _build(leaves: list[bytes], cuts: list[int], store: NodeStore) -> MerkleTree:
    """Feed `leaves` alternating single appends and batches at the positions in `cuts`."""
    tree = MerkleTree(store)
    pos = 0
    for i, cut in enumerate(sorted({min(c, len(leaves)) for c in cuts} | {len(leaves)})):
        if i % 2:
            tree.extend(leaves[pos:cut])
        else:
            for leaf in leaves[pos:cut]:
                tree.append(leaf)
        pos = cut
    return tree


sizes = st.integers(min_value=0, max_value=150)
cut_lists = st.lists(st.integers(min_value=0, max_value=150), max_size=5)


class TestMerkleTree:
    @settings(max_examples=60, deadline=None)
    @given(n=sizes, cuts=cut_lists)
    def test_roots_at_every_size_equal_the_reference(self, n: int, cuts: list[int]) -> None:
        """Mixing append and extend gives, at every past size, the recursive RFC 6962 root."""
        leaves = _leaves(n)
        tree = _build(leaves, cuts, MemoryNodeStore())
        assert tree.size == n
        assert tree.root() == root_of(leaves)
        for size in range(n + 1):
            assert tree.root(size) == root_of(leaves[:size])

    @settings(max_examples=40, deadline=None)
    @given(data=st.data(), n=st.integers(min_value=1, max_value=150))
    def test_proofs_verify_against_reference_roots(self, data: st.DataObject, n: int) -> None:
        """Inclusion and consistency proofs at random sizes verify against reference roots."""
        leaves = _leaves(n)
        tree = _build(leaves, [n // 3], MemoryNodeStore())
        size = data.draw(st.integers(min_value=1, max_value=n))
        index = data.draw(st.integers(min_value=0, max_value=size - 1))
        old = data.draw(st.integers(min_value=1, max_value=size))
        verify_inclusion(
            leaves[index], index, size, tree.inclusion_proof(index, size), root_of(leaves[:size])
        )
        proof = tree.consistency_proof(old, size)
        verify_consistency(old, size, proof, root_of(leaves[:old]), root_of(leaves[:size]))

    def test_every_proof_of_a_small_tree_verifies(self) -> None:
        """All proofs of a 33-leaf tree verify; an inclusion proof fails for a wrong leaf."""
        leaves = _leaves(33)
        tree = MerkleTree(MemoryNodeStore())
        tree.extend(leaves)
        for size in range(1, 34):
            root = tree.root(size)
            for index in range(size):
                proof = tree.inclusion_proof(index, size)
                verify_inclusion(leaves[index], index, size, proof, root)
                wrong = leaves[index - 1] if index else EMPTY_ROOT
                with pytest.raises(ProofError):
                    verify_inclusion(wrong, index, size, proof, root)
            for old in range(1, size + 1):
                proof = tree.consistency_proof(old, size)
                verify_consistency(old, size, proof, tree.root(old), root)

    def test_empty_tree_has_the_empty_root(self) -> None:
        """A tree with no leaves has root SHA-256("") at size 0."""
        tree = MerkleTree(MemoryNodeStore())
        assert tree.size == 0
        assert tree.root() == tree.root(0) == EMPTY_ROOT == hashlib.sha256(b"").digest()

    def test_sizes_and_indexes_outside_the_tree_are_refused(self) -> None:
        """Roots and proofs beyond the current size, and wrong-length leaves, raise LedgerError."""
        tree = MerkleTree(MemoryNodeStore())
        tree.extend(_leaves(4))
        with pytest.raises(LedgerError):
            tree.root(5)
        with pytest.raises(LedgerError):
            tree.inclusion_proof(4, 4)
        with pytest.raises(LedgerError):
            tree.consistency_proof(3, 5)
        with pytest.raises(LedgerError):
            tree.append(b"short")
        with pytest.raises(LedgerError):
            tree.extend([b"\x00" * 33])

    def test_append_returns_the_leaf_index(self) -> None:
        """append returns consecutive indexes starting after the batch already stored."""
        tree = MerkleTree(MemoryNodeStore())
        tree.extend(_leaves(5))
        assert tree.append(leaf_hash(b"x")) == 5
        assert tree.append(leaf_hash(b"y")) == 6


class TestFileNodeStore:
    @settings(max_examples=15, deadline=None)
    @given(n=st.integers(min_value=0, max_value=120), cuts=cut_lists)
    def test_reopened_store_gives_the_same_roots_and_proofs(
        self, tmp_path_factory: pytest.TempPathFactory, n: int, cuts: list[int]
    ) -> None:
        """A tree reopened from its level files has the same size, roots and proofs."""
        directory = tmp_path_factory.mktemp("nodes")
        leaves = _leaves(n)
        with FileNodeStore(directory) as store:
            before = _build(leaves, cuts, store)
            roots = [before.root(size) for size in range(n + 1)]
            proofs = [before.inclusion_proof(i, n) for i in range(n)]
            store.sync()
        with FileNodeStore(directory) as store:
            after = MerkleTree(store)
            assert after.size == n
            assert [after.root(size) for size in range(n + 1)] == roots
            assert [after.inclusion_proof(i, n) for i in range(n)] == proofs
            after.append(leaf_hash(b"next"))
            assert after.root() == root_of([*leaves, leaf_hash(b"next")])

    def test_buffered_nodes_are_readable_before_flush(self, tmp_path: Path) -> None:
        """Nodes still in the append buffer serve roots and proofs like written ones."""
        leaves = _leaves(40)
        with FileNodeStore(tmp_path) as store:
            tree = MerkleTree(store)
            tree.extend(leaves[:20])
            store.flush()
            tree.extend(leaves[20:])
            assert tree.root(37) == root_of(leaves[:37])
            verify_inclusion(leaves[3], 3, 40, tree.inclusion_proof(3, 40), root_of(leaves))

    def test_lagging_upper_level_is_rebuilt_on_open(self, tmp_path: Path) -> None:
        """If a crash left an upper level short, opening the tree recomputes the missing nodes."""
        leaves = _leaves(100)
        with FileNodeStore(tmp_path) as store:
            MerkleTree(store).extend(leaves)
        os.truncate(tmp_path / "level-02.bin", 32 * 3)
        with FileNodeStore(tmp_path) as store:
            tree = MerkleTree(store)
            assert store.count(2) == 25
            assert tree.root(64) == root_of(leaves[:64])
            assert tree.root() == root_of(leaves)

    def test_lost_leaves_cut_upper_levels_and_torn_hash(self, tmp_path: Path) -> None:
        """Lost leaves (and a torn tail) cut the upper levels back to what the leaves imply."""
        leaves = _leaves(100)
        with FileNodeStore(tmp_path) as store:
            MerkleTree(store).extend(leaves)
        os.truncate(tmp_path / "level-00.bin", 32 * 70)
        with (tmp_path / "level-00.bin").open("ab") as torn:
            torn.write(b"\xff" * 7)
        with FileNodeStore(tmp_path) as store:
            tree = MerkleTree(store)
            assert tree.size == 70
            assert store.count(3) == 70 >> 3
            assert store.count(6) == 1
            assert tree.root() == root_of(leaves[:70])
            tree.extend(leaves[70:])
            assert tree.root() == root_of(leaves)

    def test_truncate_cuts_every_level(self, tmp_path: Path) -> None:
        """truncate(size) leaves size >> level nodes at each level and the root at that size."""
        leaves = _leaves(50)
        with FileNodeStore(tmp_path) as store:
            MerkleTree(store).extend(leaves)
            store.truncate(21)
            assert [store.count(level) for level in range(7)] == [21, 10, 5, 2, 1, 0, 0]
            assert MerkleTree(store).root() == root_of(leaves[:21])
