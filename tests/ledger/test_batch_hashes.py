"""The batch hashes of the ledger's hot path (`merkle.leaf_hashes`, `merkle.node_hashes`): the
C module (`ledger/_batch.c`, OpenSSL) against the hashlib reference, byte for byte."""

from __future__ import annotations

import hashlib
import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apiwatch.ledger import merkle, segments
from apiwatch.ledger.merkle import leaf_hash, leaf_hashes, node_hash, node_hashes

_NATIVE = pytest.mark.skipif(merkle._native_leaves is None, reason="built without OpenSSL headers")
_RECORDS = st.lists(st.binary(max_size=2000), max_size=40)
_DIGESTS = st.lists(st.binary(min_size=32, max_size=32), max_size=40).map(
    lambda digests: digests[: len(digests) & ~1]
)


def test_the_c_hashes_are_built() -> None:
    """The README's install builds them here (gcc, OpenSSL's headers); without them every
    append hashes through hashlib at about twice the cost, holding the GIL."""
    assert merkle._native_leaves is not None
    assert merkle._native_nodes is not None
    assert not isinstance(segments._line_feeds, operator.methodcaller)


@_NATIVE
@settings(max_examples=300, deadline=None)
@given(_RECORDS, st.booleans())
def test_leaf_hashes_agree_with_the_reference(records: list[bytes], as_tuple: bool) -> None:
    batch = tuple(records) if as_tuple else records
    assert leaf_hashes(batch) == merkle._leaf_hashes_py(records)
    assert leaf_hashes(batch) == [leaf_hash(record) for record in records]


@_NATIVE
@settings(max_examples=300, deadline=None)
@given(_DIGESTS)
def test_node_hashes_agree_with_the_reference(nodes: list[bytes]) -> None:
    expected = [node_hash(left, right) for left, right in zip(nodes[::2], nodes[1::2], strict=True)]
    assert node_hashes(nodes) == merkle._node_hashes_py(nodes) == expected


def test_the_rfc_6962_prefixes() -> None:
    """A leaf is SHA-256(0x00 || data), a node SHA-256(0x01 || left || right)."""
    assert leaf_hashes([b"", b"abc"]) == [
        hashlib.sha256(b"\x00").digest(), hashlib.sha256(b"\x00abc").digest(),
    ]
    left, right = b"L" * 32, b"R" * 32
    assert node_hashes([left, right]) == [hashlib.sha256(b"\x01" + left + right).digest()]


@pytest.mark.parametrize("batch", [leaf_hashes, node_hashes, merkle._node_hashes_py])
def test_wrong_input_is_refused(batch: object) -> None:
    assert callable(batch)
    if batch is not leaf_hashes:
        with pytest.raises(ValueError, match="pairs"):
            batch([b"x" * 32])  # an odd number of nodes


@_NATIVE
@pytest.mark.parametrize("function", ["leaf_hashes", "node_hashes"])
@pytest.mark.parametrize("argument", [[b"ab", "cd"], [bytearray(b"ab"), b"cd"], b"abcd", None])
def test_the_c_module_refuses_what_is_not_bytes(function: str, argument: object) -> None:
    native = merkle._native_leaves if function == "leaf_hashes" else merkle._native_nodes
    assert native is not None
    with pytest.raises(TypeError):
        native(argument)  # type: ignore[arg-type]


def test_without_the_c_module_hashlib_gives_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [b"first", b"second", b"third", b""]
    leaves = leaf_hashes(records)
    parents = node_hashes(leaves)
    monkeypatch.setattr(merkle, "_native_leaves", None)
    monkeypatch.setattr(merkle, "_native_nodes", None)
    assert leaf_hashes(records) == leaves
    assert node_hashes(leaves) == parents


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=50) | st.just(b"\n"), max_size=20).map(b"".join))
def test_line_feeds_are_counted_as_bytes_count_does(data: bytes) -> None:
    """The ledger counts a joined batch's line feeds (one per record, or a record holds one)."""
    assert segments._line_feeds(data) == data.count(b"\n")
