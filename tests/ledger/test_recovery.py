"""Crash leftovers are repaired and reported on open; signed records are never cut."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_factory import log_file, make_ledger, record, write_records

from apiwatch.ledger.errors import LedgerError
from apiwatch.ledger.log import Ledger
from apiwatch.ledger.merkle import leaf_hash, root_of


def _expected_root(n: int) -> bytes:
    return root_of([leaf_hash(record(i)) for i in range(n)])


def test_torn_last_record_is_cut_and_reported(tmp_path: Path) -> None:
    """A partial last line is cut; the report names the bytes and the record it followed."""
    path = make_ledger(tmp_path / "l", 20, (10,))
    with log_file(path).open("ab") as f:
        f.write(b'{"half a rec')
    with Ledger.open(path) as ledger:
        assert (ledger.recovery.bytes_cut, ledger.recovery.after_index) == (12, 19)
        assert "cut a torn record of 12 bytes after record 19" in str(ledger.recovery)
        assert (ledger.size, ledger.root()) == (20, _expected_root(20))
        assert ledger.append(record(20)) == 20


def test_index_behind_the_log_is_rebuilt(tmp_path: Path) -> None:
    """Records written but missing from the offsets index (crash between writes) are kept."""
    path = make_ledger(tmp_path / "l", 20, (10,))
    idx = log_file(path).with_suffix(".idx")
    idx.write_bytes(idx.read_bytes()[: 15 * 8 + 3])  # 15 entries and a torn one
    with Ledger.open(path) as ledger:
        assert (ledger.recovery.index_added, ledger.recovery.index_dropped) == (5, 0)
        assert ledger.read(17) == record(17)


def test_index_ahead_of_the_log_is_dropped(tmp_path: Path) -> None:
    """Index entries naming bytes the log does not hold are dropped."""
    path = make_ledger(tmp_path / "l", 20, (10,))
    write_records(path, [record(i) for i in range(18)])
    with Ledger.open(path) as ledger:
        assert (ledger.size, ledger.recovery.index_dropped) == (18, 2)
        assert ledger.recovery.leaves_dropped == 2
        assert ledger.root() == _expected_root(18)


def test_tree_behind_records_is_rehashed(tmp_path: Path) -> None:
    """Stored leaves missing for records on disk are hashed again from the records."""
    path = make_ledger(tmp_path / "l", 20, (10,))
    for level in (path / "tree").iterdir():
        level.unlink()
    with Ledger.open(path) as ledger:
        assert ledger.recovery.leaves_added == 20
        assert ledger.root() == _expected_root(20)


def test_missing_signed_records_refuse_to_open(tmp_path: Path) -> None:
    """A log shorter than the latest checkpoint is not repaired: open names both sizes."""
    path = make_ledger(tmp_path / "l", 20, (15,))
    write_records(path, [record(i) for i in range(12)])
    before = log_file(path).read_bytes()
    with pytest.raises(LedgerError, match="holds 12 records but a signed checkpoint covers 15"):
        Ledger.open(path)
    assert log_file(path).read_bytes() == before


def test_clean_close_needs_no_repair(tmp_path: Path) -> None:
    """A ledger closed normally opens with an all-zero report."""
    path = make_ledger(tmp_path / "l", 20, (10,))
    with Ledger.open(path) as ledger:
        assert ledger.recovery.clean
        assert str(ledger.recovery) == "ledger was closed cleanly"
