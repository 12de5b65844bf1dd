"""Each way of tampering with a ledger is found and located by `verify_ledger`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ledger_factory import (
    ORIGIN,
    findings,
    make_ledger,
    record,
    records_of,
    write_records,
)

from apiwatch.ledger.checkpoint import Checkpoint, sign_checkpoint
from apiwatch.ledger.keys import Keyring
from apiwatch.ledger.log import Ledger
from apiwatch.ledger.merkle import leaf_hashes, root_of
from apiwatch.ledger.note import Signer, Verifier


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """100 records signed at sizes 50 and 100."""
    return make_ledger(tmp_path / "ledger", 100, (50, 100))


def _note(path: Path, name: str) -> Path:
    return path / "checkpoints" / name


def _real_signer(path: Path) -> Signer:
    return Keyring.load(path / "keys").signers()[0]


def _resign(path: Path, records: list[bytes], size: int, signer: Signer) -> bytes:
    """Sign a checkpoint of `size` over `records` as someone holding `signer` would."""
    cp = Checkpoint(ORIGIN, size, root_of(leaf_hashes(records[:size])))
    msg = sign_checkpoint(cp, [signer])
    _note(path, f"{size}.note").write_bytes(msg)
    _note(path, "latest").write_bytes(msg)
    return msg


def test_clean_ledger_has_no_findings(ledger: Path) -> None:
    """An untouched, fully signed ledger verifies with no finding at all."""
    assert findings(ledger) == []


def test_one_modified_byte_is_located(ledger: Path) -> None:
    """Flipping one byte of record 37 is reported as record 37 modified, and nothing else."""
    records = records_of(ledger)
    records[37] = records[37].replace(b"request", b"requesT")
    write_records(ledger, records)
    assert findings(ledger) == [("modified", 37)]


def test_deleted_middle_record_is_located(ledger: Path) -> None:
    """Deleting record 42 is reported as signed record 42 missing, not as truncation."""
    records = records_of(ledger)
    del records[42]
    write_records(ledger, records)
    assert findings(ledger) == [("missing", 42)]


def test_inserted_record_is_located(ledger: Path) -> None:
    """A record slipped in before record 60 is reported as inserted at 60."""
    records = records_of(ledger)
    records.insert(60, b'{"forged":true}')
    write_records(ledger, records)
    assert findings(ledger) == [("inserted", 60)]


def test_swapped_records_are_reported_reordered(ledger: Path) -> None:
    """Swapping records 10 and 70 reports both as reordered at their new positions."""
    records = records_of(ledger)
    records[10], records[70] = records[70], records[10]
    write_records(ledger, records)
    assert findings(ledger) == [("reordered", 10), ("reordered", 70)]


def test_truncation_below_signed_size(ledger: Path) -> None:
    """Cutting the log to 80 records when 100 are signed is reported as truncated at 80."""
    write_records(ledger, records_of(ledger)[:80])
    assert findings(ledger) == [("truncated", 80)]


def test_truncation_inside_unsigned_tail_then_caught(tmp_path: Path) -> None:
    """Cutting unsigned records shows only as a shorter unsigned tail, until a checkpoint
    signed before the cut (pinned by a witness) exposes it as truncation and rollback."""
    path = make_ledger(tmp_path / "ledger", 100, (80,))
    copy = shutil.copytree(path, tmp_path / "copy")
    write_records(copy, records_of(copy)[:90])
    with Ledger.open(copy) as cut:  # recovery drops the stored leaves of the cut records
        assert cut.recovery.leaves_dropped == 10
    assert findings(copy) == [("unsigned_tail", 80)]
    with Ledger.open(path) as original:
        witnessed = original.checkpoint()
    assert findings(copy, trusted=witnessed) == [("rollback", 80), ("truncated", 90)]


def test_truncate_and_reappend_with_tree_rewritten(ledger: Path) -> None:
    """Replacing the last 5 records and rewriting the tree to match can only be located to
    the failing checkpoint range: records 50..99."""
    records = records_of(ledger)[:95] + [b'{"forged":%d}' % i for i in range(5)]
    write_records(ledger, records, rebuild_tree=True)
    assert findings(ledger) == [("root_mismatch", 50)]


def test_tree_rewritten_alone_is_reported(ledger: Path) -> None:
    """Tree files rewritten over other records, the log intact, are a tree mismatch."""
    records = records_of(ledger)
    write_records(ledger, [*records[:99], b"other"], rebuild_tree=True)
    write_records(ledger, records)
    assert findings(ledger) == [("tree_mismatch", 100)]


def test_replaced_ledger_signed_with_foreign_key(ledger: Path, tmp_path: Path) -> None:
    """A ledger rebuilt and signed by another key fails against the real vkey and against
    a checkpoint pinned earlier."""
    real_vkey = Keyring.load(ledger / "keys").verifiers()[0]
    pinned = _note(ledger, "100.note").read_bytes()
    shutil.rmtree(ledger)
    with Ledger.create(ledger, ORIGIN, ORIGIN) as fake:
        fake.append_batch([b'{"fake":%d}' % i for i in range(100)])
        fake.checkpoint()
    assert findings(ledger) == []  # self-consistent when its own keys are trusted
    assert findings(ledger, verifiers=[real_vkey]) == [
        ("unknown_signature", 100),
        ("unknown_signature", 100),
        ("unsigned_tail", 0),
    ]
    assert findings(ledger, trusted=pinned) == [
        ("unknown_signature", 100),
        ("split_view", 100),
    ]


def test_resigned_with_real_key_but_inconsistent_with_pinned(ledger: Path) -> None:
    """Rewriting record 10 and re-signing every checkpoint with the stolen real key is caught
    by a checkpoint of size 75 pinned before the rewrite."""
    with Ledger.open(ledger) as original:
        pinned_root = original.root(75)
    signer = _real_signer(ledger)
    pinned = sign_checkpoint(Checkpoint(ORIGIN, 75, pinned_root), [signer])
    records = records_of(ledger)
    records[10] = b'{"rewritten":true}'
    write_records(ledger, records, rebuild_tree=True)
    for size in (50, 100):
        _resign(ledger, records, size, signer)
    assert findings(ledger) == []
    assert findings(ledger, trusted=pinned) == [("inconsistent", 75)]


def test_replayed_older_checkpoint_as_latest(ledger: Path) -> None:
    """An older checkpoint copied over `latest` is a rollback."""
    _note(ledger, "latest").write_bytes(_note(ledger, "50.note").read_bytes())
    assert findings(ledger) == [("rollback", 50)]


def test_rollback_below_trusted_checkpoint(ledger: Path) -> None:
    """Removing the newest checkpoint and replaying the older one is caught by the pinned one."""
    pinned = _note(ledger, "100.note").read_bytes()
    _note(ledger, "100.note").unlink()
    _note(ledger, "latest").write_bytes(_note(ledger, "50.note").read_bytes())
    assert findings(ledger, trusted=pinned) == [("rollback", 50)]


def test_same_size_different_root_is_split_view(ledger: Path) -> None:
    """A second correctly signed checkpoint of size 100 with another root is a split view."""
    records = [record(i) for i in range(99)] + [b'{"other":1}']
    cp = Checkpoint(ORIGIN, 100, root_of(leaf_hashes(records)))
    _note(ledger, "latest").write_bytes(sign_checkpoint(cp, [_real_signer(ledger)]))
    assert findings(ledger) == [("split_view", 100)]


@pytest.mark.parametrize(
    ("old", "new", "index"),
    [
        (b"\n100\n", b"\n101\n", 101),  # size
        (b"\n100\n", b"\n100\nB", 100),  # root: its first base64 character changed
        (ORIGIN.encode() + b"\n100", b"example.org/other\n100", 100),  # origin
    ],
    ids=["size", "root", "origin"],
)
def test_edited_checkpoint_has_bad_signature(
    ledger: Path, old: bytes, new: bytes, index: int
) -> None:
    """Editing a signed checkpoint's size, root or origin breaks its signature."""
    path = _note(ledger, "100.note")
    msg = path.read_bytes()
    if new.endswith(b"B"):  # replace the root's first character rather than insert one
        at = msg.index(old) + len(old)
        edited = msg[:at] + (b"B" if msg[at : at + 1] != b"B" else b"C") + msg[at + 1 :]
    else:
        edited = msg.replace(old, new, 1)
    path.write_bytes(edited)
    assert findings(ledger) == [("bad_signature", index)]


def test_torn_last_line_is_a_warning_then_cut(ledger: Path) -> None:
    """A partial last record is reported as torn (not tampering); opening cuts and reports it."""
    with Ledger.open(ledger) as live:
        live.append(record(100))
    log = ledger / "segments" / "00000000000000000000.log"
    with log.open("ab") as f:
        f.write(b'{"partial":')
    assert findings(ledger) == [("torn", 101), ("unsigned_tail", 100)]
    with Ledger.open(ledger) as reopened:
        assert (reopened.recovery.bytes_cut, reopened.recovery.after_index) == (11, 100)
    assert findings(ledger) == [("unsigned_tail", 100)]


def test_key_rotation_old_checkpoints_verify_new_old_key_flagged(tmp_path: Path) -> None:
    """After a rotation the old checkpoints still verify with the retired key, but a new
    checkpoint signed only by the retired key is flagged."""
    path = make_ledger(tmp_path / "ledger", 50)
    ring = Keyring.load(path / "keys")
    stolen = ring.signers()[0]
    ring.rotate("example.com/apiwatch-test-2")
    with Ledger.open(path) as live:
        live.append_batch([record(i) for i in range(50, 100)])
        live.checkpoint()  # dual-signed
    ring.retire(ORIGIN)
    with Ledger.open(path) as live:
        live.append_batch([record(i) for i in range(100, 150)])
        live.checkpoint()  # new key only
        live.append_batch([record(i) for i in range(150, 200)])
    assert findings(path) == [("unsigned_tail", 150)]
    old_vkey = Verifier.from_vkey(stolen.vkey)
    assert findings(path, verifiers=[old_vkey])[:2] == [
        ("unknown_signature", 150),
        ("unknown_signature", 150),
    ]
    _resign(path, [record(i) for i in range(200)], 200, stolen)
    assert findings(path) == [("retired_key", 200)]
