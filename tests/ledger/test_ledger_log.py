"""The `Ledger`: records, proofs from the stored tree, signed checkpoints and their policy."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from ledger_factory import ORIGIN, record

from apiwatch.ledger.checkpoint import open_checkpoint
from apiwatch.ledger.errors import LedgerError
from apiwatch.ledger.keys import Keyring
from apiwatch.ledger.log import Ledger
from apiwatch.ledger.merkle import leaf_hash, root_of
from apiwatch.ledger.proofs import verify_consistency, verify_inclusion


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    """A fresh ledger that checkpoints after 10 records or 5 seconds."""
    return Ledger.create(tmp_path / "l", ORIGIN, ORIGIN, checkpoint_records=10,
                         checkpoint_seconds=5.0)


def test_append_returns_indexes_and_reads_back(ledger: Ledger) -> None:
    """append and append_batch return consecutive indexes; read returns the exact bytes."""
    assert ledger.append(record(0)) == 0
    assert ledger.append_batch([record(1), record(2)]) == 1
    assert (ledger.size, ledger.read(2), ledger.read_range(0, 2)) == (3, record(2),
                                                                      [record(0), record(1)])
    ledger.close()


def test_roots_and_proofs_match_rfc6962(ledger: Ledger) -> None:
    """Roots equal the reference MTH; inclusion and consistency proofs verify."""
    ledger.append_batch([record(i) for i in range(37)])
    leaves = [leaf_hash(record(i)) for i in range(37)]
    assert ledger.root(20) == root_of(leaves[:20])
    assert ledger.root() == root_of(leaves)
    verify_inclusion(leaves[13], 13, 37, ledger.inclusion_proof(13, 37), ledger.root())
    verify_consistency(20, 37, ledger.consistency_proof(20, 37), ledger.root(20), ledger.root())
    ledger.close()


def test_checkpoint_is_signed_c2sp_note_stored_as_latest(ledger: Ledger) -> None:
    """checkpoint() signs origin, size and root with the keyring and stores it as latest."""
    ledger.append_batch([record(i) for i in range(5)])
    msg = ledger.checkpoint()
    cp, _ = open_checkpoint(msg, Keyring.load(ledger.directory / "keys").verifiers())
    assert (cp.origin, cp.size, cp.root_hash) == (ORIGIN, 5, ledger.root())
    assert ledger.latest_checkpoint() == msg
    assert (ledger.directory / "checkpoints" / "5.note").read_bytes() == msg
    ledger.close()


def test_witness_key_cosigns_checkpoints(ledger: Ledger) -> None:
    """With a witness key in the keyring every checkpoint carries its cosignature."""
    ring = Keyring.load(ledger.directory / "keys")
    ring.add_witness("witness.example")
    ledger.append(record(0))
    _, note = open_checkpoint(ledger.checkpoint(), [ring.witness_verifier()])  # type: ignore[list-item]
    assert [v.name for v in note.verified_by] == ["witness.example"]
    ledger.close()


def test_maybe_checkpoint_by_count_time_and_only_when_new(ledger: Ledger) -> None:
    """maybe_checkpoint signs new records at first, then after 10 records or 5 s, never when
    nothing is new."""
    ledger.append(record(0))
    assert ledger.maybe_checkpoint(100.0) is not None  # first call: sign what is there
    assert ledger.maybe_checkpoint(101.0) is None  # nothing new
    ledger.append_batch([record(i) for i in range(1, 5)])
    assert ledger.maybe_checkpoint(102.0) is None  # 4 new, 2 s: not yet
    assert ledger.maybe_checkpoint(105.0) is not None  # 5 s elapsed
    ledger.append_batch([record(i) for i in range(5, 15)])
    assert ledger.maybe_checkpoint(105.5) is not None  # 10 new records
    ledger.close()


def test_concurrent_appends_from_threads(ledger: Ledger) -> None:
    """Appends from several threads all land, each once, and the tree covers them all."""
    def work(t: int) -> None:
        for i in range(50):
            ledger.append_batch([b"t%d-%d" % (t, i)])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = ledger.read_range(0, ledger.size)
    assert sorted(records) == sorted(b"t%d-%d" % (t, i) for t in range(4) for i in range(50))
    assert ledger.root() == root_of([leaf_hash(r) for r in records])
    ledger.close()


def test_reopen_keeps_records_and_root(ledger: Ledger) -> None:
    """A closed and reopened ledger has the same size and root, and a clean recovery."""
    ledger.append_batch([record(i) for i in range(9)])
    root = ledger.root()
    ledger.close()
    with Ledger.open(ledger.directory) as again:
        assert (again.size, again.root(), again.recovery.clean) == (9, root, True)


def test_create_refuses_existing_ledger_and_open_non_ledger(tmp_path: Path) -> None:
    """create never overwrites a ledger; open of a plain directory says it is not a ledger."""
    Ledger.create(tmp_path / "l", ORIGIN, ORIGIN).close()
    with pytest.raises(LedgerError, match="already holds a ledger"):
        Ledger.create(tmp_path / "l", ORIGIN, ORIGIN)
    with pytest.raises(LedgerError, match="not a ledger"):
        Ledger.open(tmp_path)
