"""The keyring: files and modes, rotation with dual signing, retirement, the witness key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from apiwatch.ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from apiwatch.ledger.errors import KeyringError, NoteError
from apiwatch.ledger.keys import ACTIVE, RETIRED, RETIRED_WITNESS, WITNESS, Keyring
from apiwatch.ledger.log import Ledger
from apiwatch.ledger.merkle import leaf_hash
from apiwatch.ledger.note import add_signatures, generate_key

CP = Checkpoint("example.com/log", 7, leaf_hash(b"seven"))


class TestKeyring:
    def test_create_writes_private_key_0600_and_loads_back(self, tmp_path: Path) -> None:
        """create writes a 0600 skey and a vkey; load finds the same active key."""
        ring = Keyring.create(tmp_path / "keys", "example.com/log")
        skey_file = tmp_path / "keys" / "example.com%2Flog.skey"
        assert stat.S_IMODE(skey_file.stat().st_mode) == 0o600
        loaded = Keyring.load(tmp_path / "keys")
        assert loaded.entries == ring.entries
        assert [e.role for e in loaded.entries] == [ACTIVE]
        assert loaded.signers()[0].vkey == loaded.entries[0].vkey

    def test_no_overwrite_and_no_load_from_nothing(self, tmp_path: Path) -> None:
        """A keyring is never overwritten, and loading nothing is a KeyringError."""
        with pytest.raises(KeyringError):
            Keyring.load(tmp_path)
        Keyring.create(tmp_path, "log")
        with pytest.raises(KeyringError):
            Keyring.create(tmp_path, "log")

    def test_rotation_dual_signs_until_retire(self, tmp_path: Path) -> None:
        """After rotate both keys sign; after retire only the new one, and old notes verify."""
        ring = Keyring.create(tmp_path, "log-2024")
        before = sign_checkpoint(CP, ring.signers())
        ring.rotate("log-2025")
        during = sign_checkpoint(CP, ring.signers())
        new_only = [v for v in ring.verifiers() if v.name == "log-2025"]
        _, note = open_checkpoint(during, ring.verifiers())
        assert [v.name for v in note.verified_by] == ["log-2024", "log-2025"]
        ring.retire("log-2024")
        assert not (tmp_path / "log-2024.skey").exists()
        assert [s.name for s in ring.signers()] == ["log-2025"]
        reloaded = Keyring.load(tmp_path)
        assert [e.role for e in reloaded.entries] == [RETIRED, ACTIVE]
        open_checkpoint(before, reloaded.verifiers())  # the retired key still verifies
        with pytest.raises(NoteError):
            open_checkpoint(before, new_only)

    def test_last_active_key_cannot_be_retired(self, tmp_path: Path) -> None:
        """Retiring the only active key, an unknown key or a retired one is refused."""
        ring = Keyring.create(tmp_path, "only")
        with pytest.raises(KeyringError):
            ring.retire("only")
        with pytest.raises(KeyringError):
            ring.retire("nobody")
        ring.rotate("next")
        ring.retire("only")
        with pytest.raises(KeyringError):
            ring.retire("only")

    def test_names_are_unique_and_valid(self, tmp_path: Path) -> None:
        """A duplicate name or one a note cannot carry is refused."""
        ring = Keyring.create(tmp_path, "log")
        with pytest.raises(KeyringError):
            ring.rotate("log")
        with pytest.raises(KeyringError):
            ring.rotate("has space")
        with pytest.raises(KeyringError):
            ring.rotate("has+plus")

    def test_witness_cosigns_and_is_not_a_log_verifier(self, tmp_path: Path) -> None:
        """The witness key cosigns checkpoints but is not among the log's verifiers."""
        ring = Keyring.create(tmp_path, "log")
        assert ring.witness_signer() is None
        ring.add_witness("witness.example")
        with pytest.raises(KeyringError):
            ring.add_witness("second")
        witness = ring.witness_signer()
        witness_v = ring.witness_verifier()
        assert witness is not None
        assert witness_v is not None
        assert "witness.example" not in [v.name for v in ring.verifiers()]
        msg = add_signatures(sign_checkpoint(CP, ring.signers()), [witness])
        _, note = open_checkpoint(msg, [*ring.verifiers(), witness_v])
        assert [v.name for v in note.verified_by] == ["log", "witness.example"]
        assert ring.retire("witness.example").role == RETIRED_WITNESS
        assert ring.witness_signer() is None
        ring.add_witness("witness2.example")
        assert [e.role for e in ring.entries] == [ACTIVE, RETIRED_WITNESS, WITNESS]

    def test_mismatched_key_files_are_detected(self, tmp_path: Path) -> None:
        """An skey file replaced by another key no longer loads as a signer."""
        ring = Keyring.create(tmp_path, "log")
        other, _ = generate_key("log")
        skey_file = tmp_path / "log.skey"
        skey_file.unlink()
        skey_file.write_text(other + "\n")
        with pytest.raises(KeyringError):
            ring.signers()


def test_ledger_created_after_keys_generate_signs_with_that_key(tmp_path: Path) -> None:
    """`apiwatch keys generate` before the first start: the new ledger adopts that keyring."""
    ring = Keyring.create(tmp_path / "ledger" / "keys", "chosen")
    ledger = Ledger.create(tmp_path / "ledger", "example.com/log", "ignored")
    ledger.append_batch([b"record"])
    note = ledger.checkpoint()
    ledger.close()
    assert [v.name for v in ring.verifiers()] == ["chosen"]
    assert "\u2014 chosen ".encode() in note
