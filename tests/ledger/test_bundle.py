"""Evidence bundles verify with only the vkey, and every kind of tampering is caught."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from apiwatch.cli import main
from apiwatch.ledger.bundle import verify_bundle, write_bundle
from apiwatch.ledger.checkpoint import Checkpoint, sign_checkpoint
from apiwatch.ledger.errors import LedgerError
from apiwatch.ledger.merkle import MemoryNodeStore, MerkleTree, leaf_hash
from apiwatch.ledger.note import Signer, Verifier, generate_key

RECORDS = [f'{{"event": {i}}}'.encode() for i in range(20)]
CHOSEN = (0, 7, 19)


def _keys(name: str) -> tuple[Signer, Verifier]:
    skey, vkey = generate_key(name)
    return Signer.from_skey(skey), Verifier.from_vkey(vkey)


@pytest.fixture
def log_keys() -> tuple[Signer, Verifier]:
    """The log's signing key and its public verifier."""
    return _keys("example.com/log")


@pytest.fixture
def bundle_path(tmp_path: Path, log_keys: tuple[Signer, Verifier]) -> Path:
    """A bundle of three records of a 20-record log, at its latest checkpoint."""
    tree = MerkleTree(MemoryNodeStore())
    tree.extend(leaf_hash(r) for r in RECORDS)
    cp = Checkpoint("example.com/log", tree.size, tree.root())
    path = tmp_path / "bundle.json"
    write_bundle(
        [(i, RECORDS[i]) for i in CHOSEN],
        [tree.inclusion_proof(i, tree.size) for i in CHOSEN],
        sign_checkpoint(cp, [log_keys[0]]),
        path,
    )
    return path


def _edit(path: Path, change: Any) -> None:
    bundle = json.loads(path.read_text())
    change(bundle)
    path.write_text(json.dumps(bundle))


class TestBundle:
    def test_untouched_bundle_verifies(
        self, bundle_path: Path, log_keys: tuple[Signer, Verifier]
    ) -> None:
        """All records of an untouched bundle are proven against the signed checkpoint."""
        report = verify_bundle(bundle_path, [log_keys[1]])
        assert report.ok
        assert report.verified == CHOSEN
        assert report.checkpoint is not None
        assert report.checkpoint.size == 20
        assert report.verified_by == (log_keys[1].vkey,)

    def test_altered_record_fails(
        self, bundle_path: Path, log_keys: tuple[Signer, Verifier]
    ) -> None:
        """Changing one byte of a record fails that record only."""
        altered = base64.b64encode(b'{"event": 8}').decode()
        _edit(bundle_path, lambda b: b["records"][1].update(data=altered))
        report = verify_bundle(bundle_path, [log_keys[1]])
        assert not report.ok
        assert report.verified == (0, 19)
        assert len(report.failures) == 1

    def test_altered_proof_or_index_fails(
        self, bundle_path: Path, log_keys: tuple[Signer, Verifier]
    ) -> None:
        """A flipped proof hash, or a record moved to another index, fails."""

        def flip(bundle: dict[str, Any]) -> None:
            proof = bundle["records"][0]["proof"]
            proof[0] = base64.b64encode(bytes(32)).decode()
            bundle["records"][2]["index"] = 18

        _edit(bundle_path, flip)
        report = verify_bundle(bundle_path, [log_keys[1]])
        assert report.verified == (7,)
        assert len(report.failures) == 2

    def test_checkpoint_resigned_with_a_foreign_key_fails(
        self, bundle_path: Path, log_keys: tuple[Signer, Verifier]
    ) -> None:
        """A checkpoint re-signed by another key (forged log state) is rejected."""
        forger, _ = _keys("example.com/log")
        tree = MerkleTree(MemoryNodeStore())
        tree.extend(leaf_hash(r) for r in RECORDS[:19])
        forged = sign_checkpoint(Checkpoint("example.com/log", 19, tree.root()), [forger])
        _edit(bundle_path, lambda b: b.update(checkpoint=forged.decode()))
        report = verify_bundle(bundle_path, [log_keys[1]])
        assert not report.ok
        assert report.checkpoint is None
        assert "unverified" in report.failures[0]

    def test_not_a_bundle_is_a_failure_and_a_missing_file_an_error(self, tmp_path: Path) -> None:
        """Garbage content is reported as a failure; an unreadable path raises LedgerError."""
        path = tmp_path / "junk.json"
        path.write_text("[1, 2]")
        assert not verify_bundle(path, []).ok
        with pytest.raises(LedgerError):
            verify_bundle(tmp_path / "missing.json", [])

    def test_cli_exit_codes(
        self, bundle_path: Path, log_keys: tuple[Signer, Verifier], tmp_path: Path
    ) -> None:
        """verify-bundle exits 0 when valid, 1 when tampered, 2 when it cannot run."""
        runner = CliRunner()
        vkey = log_keys[1].vkey
        ok = runner.invoke(main, ["verify-bundle", "--json", "--vkey", vkey, str(bundle_path)])
        assert ok.exit_code == 0
        assert json.loads(ok.stdout)["verified_records"] == list(CHOSEN)
        missing = runner.invoke(main, ["verify-bundle", "--vkey", vkey, str(tmp_path / "no")])
        assert missing.exit_code == 2
        _edit(bundle_path, lambda b: b["records"][0].update(index=1))
        bad = runner.invoke(main, ["verify-bundle", "--vkey", vkey, str(bundle_path)])
        assert bad.exit_code == 1
        assert "record #0" in bad.stderr
