"""Every third-party vector in ../shared/data/integrity, checked as its file says."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from apiwatch.ledger.checkpoint import Checkpoint
from apiwatch.ledger.errors import NoteError, ProofError
from apiwatch.ledger.merkle import EMPTY_ROOT, MemoryNodeStore, MerkleTree, leaf_hash, node_hash
from apiwatch.ledger.note import Signer, Verifier, open_note, parse_note, sign_note
from apiwatch.ledger.proofs import verify_consistency, verify_inclusion

_REPO = Path(__file__).resolve().parents[2]
_INTEGRITY = _REPO.parent / "shared" / "data" / "integrity"


def _load(shared_data: Path, name: str) -> Any:
    return json.loads((shared_data / "integrity" / name).read_text(encoding="utf-8"))


def _cases(name: str, key: str) -> list[Any]:
    """Cases for parametrize (collected before fixtures exist, so read from the same path)."""
    cases: list[Any] = json.loads((_INTEGRITY / name).read_text(encoding="utf-8"))[key]
    return cases


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value is not None else b""


class TestRfc6962Hashes:
    def test_hasher_vectors(self, shared_data: Path) -> None:
        """Empty root, leaf and node hashes equal the transparency-dev RFC 6962 vectors."""
        vectors = _load(shared_data, "rfc6962_hashes.json")["hasher"]
        assert len(vectors) == 4
        for vector in vectors:
            want = bytes.fromhex(vector["want_hex"])
            if vector["fn"] == "empty_root":
                assert want == EMPTY_ROOT
            elif vector["fn"] == "hash_leaf":
                assert leaf_hash(bytes.fromhex(vector["input_hex"])) == want
            else:
                assert vector["fn"] == "hash_children"
                left, right = bytes.fromhex(vector["left_hex"]), bytes.fromhex(vector["right_hex"])
                assert node_hash(left, right) == want

    def test_roots_and_every_complete_subtree(self, shared_data: Path) -> None:
        """The 8 CT leaves give the published roots for sizes 0..8 and every stored node."""
        data = _load(shared_data, "rfc6962_hashes.json")
        store = MemoryNodeStore()
        tree = MerkleTree(store)
        roots = data["root_hashes_by_tree_size_hex"]
        for size, leaf in enumerate(data["leaf_inputs_hex"]):
            assert tree.root().hex() == roots[size]
            tree.append(leaf_hash(bytes.fromhex(leaf)))
        assert [tree.root(size).hex() for size in range(9)] == roots
        levels = data["node_hashes_by_level_hex"]
        assert [len(level) for level in levels] == [8, 4, 2, 1]
        for level, nodes in enumerate(levels):
            assert store.count(level) == len(nodes)
            assert [store.get(level, i).hex() for i in range(len(nodes))] == nodes


class TestProbes:
    @pytest.mark.parametrize(
        "probe",
        _cases("rfc6962_inclusion_probes.json", "probes"),
        ids=lambda p: p["file"].removeprefix("testdata/inclusion/"),
    )
    def test_inclusion_probe(self, probe: dict[str, Any]) -> None:
        """An inclusion probe is accepted exactly when its wantErr is false."""
        args = (
            _b64(probe["leafHash"]),
            probe["leafIdx"],
            probe["treeSize"],
            [_b64(p) for p in probe["proof"] or []],
            _b64(probe["root"]),
        )
        if probe["wantErr"]:
            with pytest.raises(ProofError):
                verify_inclusion(*args)
        else:
            verify_inclusion(*args)

    @pytest.mark.parametrize(
        "probe",
        _cases("rfc6962_consistency_probes.json", "probes"),
        ids=lambda p: p["file"].removeprefix("testdata/consistency/"),
    )
    def test_consistency_probe(self, probe: dict[str, Any]) -> None:
        """A consistency probe is accepted exactly when its wantErr is false."""
        args = (
            probe["size1"],
            probe["size2"],
            [_b64(p) for p in probe["proof"] or []],
            _b64(probe["root1"]),
            _b64(probe["root2"]),
        )
        if probe["wantErr"]:
            with pytest.raises(ProofError):
                verify_consistency(*args)
        else:
            verify_consistency(*args)

    def test_probe_counts(self, shared_data: Path) -> None:
        """The probe files hold 98 probes each, 6 of them valid, as the README says."""
        for name in ("rfc6962_inclusion_probes.json", "rfc6962_consistency_probes.json"):
            probes = _load(shared_data, name)["probes"]
            assert len(probes) == 98
            assert sum(not p["wantErr"] for p in probes) == 6


# The file's "why" of each rejected case, as our NoteError reason codes.
_REASONS = {
    "no verifiable signatures": "unverified",
    "invalid signature for known key": "bad-signature",
    "malformed": "malformed",
    "Go caps at 100 signatures (spec: MUST accept at least 16)": "malformed",
    "signature does not cover modified text": "bad-signature",
}


def _key_ids(pairs: list[list[str]]) -> list[tuple[str, int]]:
    return [(name, int(hex_id, 16)) for name, hex_id in pairs]


class TestSignedNotes:
    @pytest.mark.parametrize(
        "case", _cases("signed_notes.json", "cases"), ids=lambda c: str(c["id"])
    )
    def test_signed_note_case(self, case: dict[str, Any]) -> None:
        """Each C2SP/Go signed-note case verifies, is rejected, re-signs or parses as expected."""
        expect = case["expect"]
        if expect == "sign_equals":
            signer = Signer.from_skey(case["skey"])
            assert sign_note(case["text"], [signer]) == case["expect_note"].encode()
            return
        if expect == "parse_only":
            assert parse_note(case["note"].encode()).text == case["expect_text"]
            return
        verifiers = [Verifier.from_vkey(v) for v in case["vkeys"]]
        if expect == "reject":
            with pytest.raises(NoteError) as caught:
                open_note(case["note"].encode(), verifiers)
            assert caught.value.reason == _REASONS[case["why"]]
            return
        assert expect == "verify"
        note = open_note(case["note"].encode(), verifiers)
        assert note.text == case.get("expect_text", note.text)
        assert [(v.name, v.key_id) for v in note.verified_by] == _key_ids(case["expect_verified"])
        unverified = [(s.name, s.key_id) for s in note.unverified]
        assert unverified == _key_ids(case.get("expect_unverified", []))

    def test_vkeys_round_trip(self, shared_data: Path) -> None:
        """Every vkey in the file parses and prints back identically."""
        cases = _load(shared_data, "signed_notes.json")["cases"]
        vkeys = {v for case in cases for v in case.get("vkeys", [])}
        assert len(vkeys) == 3
        for vkey in vkeys:
            assert Verifier.from_vkey(vkey).vkey == vkey

    def test_go_skey_matches_its_vkey(self, shared_data: Path) -> None:
        """The Go test skey yields the published PeterNeumann vkey and key id."""
        cases = {c["id"]: c for c in _load(shared_data, "signed_notes.json")["cases"]}
        signer = Signer.from_skey(cases["go-peter-sign-deterministic"]["skey"])
        assert signer.vkey == cases["go-peter-open"]["vkeys"][0]
        assert signer.key_id == 0xC74F20A3


class TestCheckpointFormats:
    def test_go_format_tree_body(self, shared_data: Path) -> None:
        """The Go FormatTree golden body is what we write and parse, and its bad bodies fail."""
        case = _load(shared_data, "checkpoint_formats.json")["cases"][0]
        assert case["id"] == "go-tlog-format-tree"
        cp = Checkpoint(case["origin"], case["size"], leaf_hash(b"hello world"))
        assert cp.body() == case["expect_body"]
        assert Checkpoint.parse(case["expect_body"], case["origin"]) == cp
        assert len(case["bad_bodies"]) == 3
        for bad in case["bad_bodies"]:
            with pytest.raises(NoteError):
                Checkpoint.parse(bad, case["origin"])

    @pytest.mark.parametrize(
        "case",
        [c for c in _cases("checkpoint_formats.json", "cases") if c.get("expect") == "parse_only"],
        ids=lambda c: str(c["id"]),
    )
    def test_parse_only_checkpoint(self, case: dict[str, Any]) -> None:
        """Real and spec checkpoints parse to the published origin, size and root."""
        note = parse_note(case["note"].encode())
        cp = Checkpoint.parse(note.text)
        want = case["expect_checkpoint"]
        assert (cp.origin, cp.size, cp.root_hash) == (
            want["origin"],
            want["size"],
            base64.b64decode(want["root_b64"]),
        )
        assert len(note.signatures) == case.get("expect_sig_lines", 1)
        with pytest.raises(NoteError):
            open_note(case["note"].encode(), [])
