"""A read-only snapshot gives records and proofs at the signed size, beside a live writer."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_factory import ORIGIN, record

from apiwatch.ledger.errors import LedgerError
from apiwatch.ledger.log import Ledger
from apiwatch.ledger.merkle import leaf_hash
from apiwatch.ledger.proofs import verify_inclusion
from apiwatch.ledger.snapshot import LedgerSnapshot


def test_records_and_proofs_while_the_writer_holds_the_ledger(tmp_path: Path) -> None:
    """With the ledger open for writing and an unsigned tail, the signed part is readable."""
    with Ledger.create(tmp_path / "l", ORIGIN, ORIGIN, roll_size=300) as ledger:
        ledger.append_batch([record(i) for i in range(37)])
        ledger.checkpoint()
        ledger.append_batch([record(i) for i in range(37, 50)])
        with LedgerSnapshot(tmp_path / "l") as snapshot:
            assert snapshot.size == 37
            for index in (0, 1, 17, 36):
                data, proof = snapshot.proven(index)
                assert data == record(index)
                verify_inclusion(leaf_hash(data), index, 37, proof, snapshot.checkpoint.root_hash)
            with pytest.raises(LedgerError, match="not covered"):
                snapshot.read(37)


def test_no_checkpoint_yet_is_a_clear_error(tmp_path: Path) -> None:
    """Before the first checkpoint there is nothing to prove, and the error says why."""
    with Ledger.create(tmp_path / "l", ORIGIN, ORIGIN) as ledger:
        ledger.append_batch([record(0)])
        with pytest.raises(LedgerError, match="no signed checkpoint"):
            LedgerSnapshot(tmp_path / "l")


def test_altered_tree_gives_an_error_not_a_bundle_that_fails_later(tmp_path: Path) -> None:
    """If a stored sibling hash was altered, proving a record fails at once, naming verify."""
    with Ledger.create(tmp_path / "l", ORIGIN, ORIGIN) as ledger:
        ledger.append_batch([record(i) for i in range(8)])
        ledger.checkpoint()
    leaves = tmp_path / "l" / "tree" / "level-00.bin"
    data = bytearray(leaves.read_bytes())
    data[32] ^= 1  # leaf 1, the sibling on leaf 0's audit path
    leaves.write_bytes(bytes(data))
    with LedgerSnapshot(tmp_path / "l") as snapshot, pytest.raises(LedgerError, match="altered"):
        snapshot.proven(0)
