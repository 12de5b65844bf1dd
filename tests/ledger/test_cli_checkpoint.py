"""`apiwatch checkpoint verify` and `apiwatch keys`, through the click entry point."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from apiwatch.cli import main
from apiwatch.ledger.checkpoint import Checkpoint, sign_checkpoint
from apiwatch.ledger.keys import Keyring
from apiwatch.ledger.merkle import leaf_hash

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
CP = Checkpoint("example.com/log", 123, leaf_hash(b"hello world"))


def _run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def _signed(tmp_path: Path) -> tuple[Path, str]:
    """A checkpoint file signed by a fresh keyring, and that keyring's vkey."""
    ring = Keyring.create(tmp_path / "keys", "example.com/log")
    path = tmp_path / "cp.note"
    path.write_bytes(sign_checkpoint(CP, ring.signers()))
    return path, ring.entries[0].vkey


class TestCheckpointVerify:
    def test_valid_checkpoint_prints_origin_size_and_root(self, tmp_path: Path) -> None:
        """A valid checkpoint exits 0 and prints origin, size and root in base64 and hex."""
        path, vkey = _signed(tmp_path)
        code, out, _ = _run("checkpoint", "verify", "--vkey", vkey, str(path))
        assert code == 0
        assert "example.com/log" in out
        assert "123" in out
        assert CP.root_hash.hex() in out
        assert "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=" in out

    def test_json_output(self, tmp_path: Path) -> None:
        """--json prints the checkpoint fields and the verifying vkey."""
        path, vkey = _signed(tmp_path)
        code, out, _ = _run("checkpoint", "verify", "--json", "--vkey", vkey, str(path))
        assert code == 0
        data = json.loads(out)
        assert data["verified_by"] == [vkey]
        assert data["checkpoint"]["size"] == 123
        assert data["checkpoint"]["root_hash_hex"] == CP.root_hash.hex()

    def test_wrong_key_or_tampering_exits_1_with_reason(self, tmp_path: Path) -> None:
        """A foreign key or an altered size exits 1 with the reason on stderr."""
        path, vkey = _signed(tmp_path)
        code, _, err = _run("checkpoint", "verify", "--vkey", PETER_VKEY, str(path))
        assert code == 1
        assert "unverified" in err
        path.write_bytes(path.read_bytes().replace(b"\n123\n", b"\n124\n"))
        code, _, err = _run("checkpoint", "verify", "--vkey", vkey, str(path))
        assert code == 1
        assert "bad-signature" in err

    def test_origin_mismatch_exits_1(self, tmp_path: Path) -> None:
        """--origin other than the checkpoint's exits 1."""
        path, vkey = _signed(tmp_path)
        code, _, _ = _run("checkpoint", "verify", "--origin", "x", "--vkey", vkey, str(path))
        assert code == 1

    def test_go_note_from_stdin_with_vkey_file(self, tmp_path: Path) -> None:
        """A Go signed note read from stdin verifies with a vkey file; its text is printed."""
        note = (
            "If you think cryptography is the answer to your problem,\n"
            "then you don't know what your problem is.\n\n"
            "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZ"
            "SNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        )
        vkey_file = tmp_path / "peter.vkey"
        vkey_file.write_text(PETER_VKEY + "\n")
        code, out, _ = _run(
            "checkpoint", "verify", "--vkey", str(vkey_file), "-", stdin=note.encode()
        )
        assert code == 0
        assert "not a checkpoint" in out
        assert "cryptography" in out

    def test_cannot_run_exits_2(self, tmp_path: Path) -> None:
        """A bad vkey, a missing file or no --vkey at all exits 2."""
        path, vkey = _signed(tmp_path)
        assert _run("checkpoint", "verify", "--vkey", "nonsense", str(path))[0] == 2
        assert _run("checkpoint", "verify", "--vkey", vkey, str(tmp_path / "none"))[0] == 2
        assert _run("checkpoint", "verify", str(path))[0] == 2


class TestKeysCli:
    def test_key_lifecycle_prints_vkeys_never_skeys(self, tmp_path: Path) -> None:
        """generate, rotate, witness, retire and list work and never print a private key."""
        data = str(tmp_path)
        outputs = []
        for args in (
            ("generate", "example.com/log"),
            ("rotate", "example.com/log-2"),
            ("witness", "witness.example"),
            ("retire", "example.com/log"),
            ("list",),
        ):
            code, out, err = _run("keys", *args, "--data", data)
            assert code == 0, err
            outputs.append(out)
        assert all("PRIVATE" not in out for out in outputs)
        ring = Keyring.load(tmp_path / "ledger" / "keys")
        for entry in ring.entries:
            assert entry.vkey in outputs[-1]
        assert ring.entries[0].vkey in outputs[0]
        code, out, _ = _run("keys", "list", "--json", "--data", data)
        roles = [(row["name"], row["role"]) for row in json.loads(out)]
        assert roles == [
            ("example.com/log", "retired"),
            ("example.com/log-2", "active"),
            ("witness.example", "witness"),
        ]

    def test_refusals_exit_2(self, tmp_path: Path) -> None:
        """A second generate, retiring the last active key or a missing keyring exits 2."""
        data = str(tmp_path)
        assert _run("keys", "list", "--data", data)[0] == 2
        assert _run("keys", "generate", "log", "--data", data)[0] == 0
        assert _run("keys", "generate", "log", "--data", data)[0] == 2
        code, _, err = _run("keys", "retire", "log", "--data", data)
        assert code == 2
        assert "only active key" in err
