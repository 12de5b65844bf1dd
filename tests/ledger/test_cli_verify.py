"""`apiwatch verify`: exit codes 0/1/2, human and JSON output, --data, --vkey, --trusted."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from ledger_factory import make_ledger, records_of, write_records

from apiwatch.cli import main
from apiwatch.ledger.bundle import verify_bundle
from apiwatch.ledger.keys import Keyring
from apiwatch.ledger.note import generate_key


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["verify", *args])
    return result.exit_code, result.output


def test_clean_ledger_exits_0(tmp_path: Path) -> None:
    """A clean ledger exits 0 and says ok with its size."""
    path = make_ledger(tmp_path / "l", 30)
    code, out = _run(str(path))
    assert (code, out) == (0, "ok: 30 records, 0 findings\n")


def test_data_dir_option_finds_the_ledger(tmp_path: Path) -> None:
    """--data DIR verifies DIR/ledger."""
    make_ledger(tmp_path / "ledger", 5)
    code, out = _run("--data", str(tmp_path))
    assert code == 0
    assert out.startswith("ok: 5 records")


def test_tampering_exits_1_with_json_findings(tmp_path: Path) -> None:
    """A modified record exits 1; --json gives ok false and the located finding."""
    path = make_ledger(tmp_path / "l", 30)
    records = records_of(path)
    records[7] = b"forged"
    write_records(path, records)
    code, out = _run(str(path), "--json")
    assert code == 1
    doc = json.loads(out)
    assert (doc["ok"], doc["size"]) == (False, 30)
    assert [(f["kind"], f["index"]) for f in doc["findings"]] == [("modified", 7)]


def test_foreign_vkey_is_trusted_instead_of_keys_dir(tmp_path: Path) -> None:
    """With --vkey the ledger's own keys are not trusted: its checkpoints are unknown."""
    path = make_ledger(tmp_path / "l", 10)
    _, other = generate_key("someone.else")
    code, out = _run(str(path), "--vkey", other, "--json")
    assert code == 1
    assert {f["kind"] for f in json.loads(out)["findings"]} == {"unknown_signature",
                                                                "unsigned_tail"}
    own = Keyring.load(path / "keys").verifiers()[0].vkey
    assert _run(str(path), "--vkey", own)[0] == 0


def test_trusted_checkpoint_file(tmp_path: Path) -> None:
    """--trusted pins a checkpoint; the same ledger verifies clean against its own."""
    path = make_ledger(tmp_path / "l", 10)
    code, _ = _run(str(path), "--trusted", str(path / "checkpoints" / "10.note"))
    assert code == 0


def test_not_a_ledger_exits_2(tmp_path: Path) -> None:
    """A directory without a ledger exits 2 with a one-line reason."""
    result = CliRunner().invoke(main, ["verify", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a ledger" in result.output


def test_export_writes_a_bundle_that_verifies(tmp_path: Path) -> None:
    """`apiwatch export` writes records with proofs that verify with the log's vkey alone."""
    path = make_ledger(tmp_path / "l", 30)
    out = tmp_path / "evidence.json"
    result = CliRunner().invoke(main, ["export", str(path), "--record", "3", "--record",
                                       "10-12", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = verify_bundle(out, Keyring.load(path / "keys").verifiers())
    assert report.ok
    beyond = CliRunner().invoke(main, ["export", str(path), "--record", "30", "--out",
                                       str(out)])
    assert beyond.exit_code == 2
    assert "not covered by the latest checkpoint" in beyond.output
