"""C2SP signed notes and tlog checkpoints: keys, signing, cosigning, and strict parsing."""

from __future__ import annotations

import base64

import pytest

from apiwatch.ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from apiwatch.ledger.errors import NoteError
from apiwatch.ledger.merkle import leaf_hash
from apiwatch.ledger.note import (
    Signer,
    Verifier,
    add_signatures,
    generate_key,
    open_note,
    parse_note,
    sign_note,
)

# sum.golang.org's published vkey: its key material contains '+' (see the data README).
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"


def _pair(name: str) -> tuple[Signer, Verifier]:
    skey, vkey = generate_key(name)
    return Signer.from_skey(skey), Verifier.from_vkey(vkey)


class TestKeys:
    def test_generated_keys_match(self) -> None:
        """A generated skey and vkey share name and key id, and the vkey round-trips."""
        skey, vkey = generate_key("example.com/log")
        signer, verifier = Signer.from_skey(skey), Verifier.from_vkey(vkey)
        assert skey.startswith("PRIVATE+KEY+example.com/log+")
        assert (signer.name, signer.key_id) == (verifier.name, verifier.key_id)
        assert signer.vkey == verifier.vkey == vkey

    def test_vkey_with_plus_in_key_material(self) -> None:
        """A vkey is split on its first two '+' only, so sum.golang.org's key parses."""
        verifier = Verifier.from_vkey(SUMDB_VKEY)
        assert (verifier.name, verifier.key_id) == ("sum.golang.org", 0x033DE0AE)
        assert verifier.vkey == SUMDB_VKEY

    @pytest.mark.parametrize(
        "vkey",
        [
            "sum.golang.org+033de0af+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",  # wrong id
            "sum.golang.org+033de0a+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",  # 7 digits
            "other.name+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",  # id is per name
            "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn",  # bad base64
            "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8Ou",  # short key
            "sum.golang.org+033de0ae",
            "bad name+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
        ],
    )
    def test_bad_vkeys_are_refused(self, vkey: str) -> None:
        """Malformed vkeys, or ones whose id does not match name and key, raise bad-key."""
        with pytest.raises(NoteError) as caught:
            Verifier.from_vkey(vkey)
        assert caught.value.reason == "bad-key"

    def test_skey_with_wrong_id_is_refused(self) -> None:
        """An skey whose key id does not match its key raises bad-key."""
        skey, _ = generate_key("log")
        private, key, name, key_id, material = skey.split("+", 4)  # material may hold '+'
        wrong = f"{private}+{key}+{name}+{int(key_id, 16) ^ 1:08x}+{material}"
        with pytest.raises(NoteError) as caught:
            Signer.from_skey(wrong)
        assert caught.value.reason == "bad-key"
        with pytest.raises(NoteError):
            Signer.from_skey("PUBLIC+KEY+" + skey.removeprefix("PRIVATE+KEY+"))


class TestNotes:
    def test_sign_and_open_round_trip(self) -> None:
        """A note signed by two keys opens with either verifier; the other stays unverified."""
        (alice, alice_v), (bob, bob_v) = _pair("alice"), _pair("bob")
        msg = sign_note("hello\n\nworld\n", [alice, bob])
        note = open_note(msg, [bob_v])
        assert note.text == "hello\n\nworld\n"
        assert note.verified_by == [bob_v]
        assert [(s.name, s.key_id) for s in note.unverified] == [("alice", alice.key_id)]
        assert open_note(msg, [alice_v, bob_v]).verified_by == [alice_v, bob_v]

    def test_signing_is_deterministic(self) -> None:
        """Ed25519 signing the same text twice yields the same bytes."""
        signer, _ = _pair("det")
        assert sign_note(b"same\n", [signer]) == sign_note("same\n", [signer])

    def test_cosigning_adds_a_line_and_replaces_the_cosigners_old_one(self) -> None:
        """add_signatures keeps the log's signature and adds (once) the witness's."""
        (log, log_v), (wit, wit_v) = _pair("log"), _pair("witness")
        msg = add_signatures(add_signatures(sign_note("text\n", [log]), [wit]), [wit])
        note = open_note(msg, [log_v, wit_v])
        assert note.verified_by == [log_v, wit_v]
        assert len(note.signatures) == 2

    def test_text_must_end_with_newline_and_have_no_control_chars(self) -> None:
        """Signing text without a final newline, or with a control character, is refused."""
        signer, _ = _pair("log")
        for text in ("no newline", "tab\there\n", "cr\r\n"):
            with pytest.raises(NoteError) as caught:
                sign_note(text, [signer])
            assert caught.value.reason == "malformed"
        with pytest.raises(NoteError):
            sign_note("x\n", [])

    def test_sixteen_signatures_are_accepted_and_101_refused(self) -> None:
        """The spec's minimum of 16 signatures opens; Go's cap of 100 is enforced."""
        signers = [_pair(f"k{i}")[0] for i in range(16)]
        msg = sign_note("many\n", signers)
        assert len(open_note(msg, [signers[15].verifier]).signatures) == 16
        line = msg.decode().split("\n\n", 1)[1].splitlines()[0]
        too_many = "many\n\n" + f"{line}\n" * 101  # Go counts repeated lines too
        with pytest.raises(NoteError) as caught:
            parse_note(too_many.encode())
        assert caught.value.reason == "malformed"

    @pytest.mark.parametrize(
        "msg",
        [
            b"text\n\n\xe2\x80\x94 Bad Name AAAAAAAA\n",  # space in name alone (Go's case lacks \n)
            b"text\n\n\xe2\x80\x94 name AAAA\n",  # signature shorter than 5 bytes
            b"text\n\n\xe2\x80\x94 name\n",  # no signature
            b"text\n\n- name AAAAAAAA\n",  # hyphen instead of em dash
            b"text\xff\n\n\xe2\x80\x94 name AAAAAAAA\n",  # invalid UTF-8
        ],
    )
    def test_malformed_notes(self, msg: bytes) -> None:
        """Each single fault in the signature block makes the note malformed."""
        with pytest.raises(NoteError) as caught:
            parse_note(msg)
        assert caught.value.reason == "malformed"


class TestCheckpoints:
    def test_round_trip_with_extensions(self) -> None:
        """A checkpoint with extension lines signs, opens and parses back equal."""
        signer, verifier = _pair("example.com/log")
        cp = Checkpoint("example.com/log", 42, leaf_hash(b"x"), ("ext one", "ext two"))
        got, note = open_checkpoint(sign_checkpoint(cp, [signer]), [verifier], "example.com/log")
        assert got == cp
        assert note.text == cp.body()
        assert cp.body().endswith("ext one\next two\n")

    def test_origin_is_checked_when_given(self) -> None:
        """open_checkpoint refuses a validly signed checkpoint of another origin."""
        signer, verifier = _pair("log")
        msg = sign_checkpoint(Checkpoint("a.example/log", 1, leaf_hash(b"")), [signer])
        with pytest.raises(NoteError):
            open_checkpoint(msg, [verifier], "b.example/log")

    @pytest.mark.parametrize("size", ["01", "-1", "+5", "", " 5", "1e3", "18446744073709551616"])
    def test_bad_sizes(self, size: str) -> None:
        """Sizes must be decimal without sign or leading zero and fit 64 bits."""
        root = base64.b64encode(leaf_hash(b"")).decode()
        with pytest.raises(NoteError):
            Checkpoint.parse(f"o\n{size}\n{root}\n")

    def test_bad_layouts(self) -> None:
        """Missing lines, a missing final newline, empty extension lines and bad roots fail."""
        root = base64.b64encode(leaf_hash(b"")).decode()
        unpadded = root.rstrip("=")
        for text in (
            f"o\n5\n{root}",
            "o\n5\n",
            f"\n5\n{root}\n",
            f"o\n5\n{root}\n\n",
            f"o\n5\n{unpadded}\n",
            f"o\n5\n{base64.b64encode(b'short').decode()}\n",
        ):
            with pytest.raises(NoteError):
                Checkpoint.parse(text)

    def test_invalid_fields_are_refused_at_construction(self) -> None:
        """A Checkpoint cannot hold a multi-line origin, a negative size or a short root."""
        with pytest.raises(NoteError):
            Checkpoint("a\nb", 1, leaf_hash(b""))
        with pytest.raises(NoteError):
            Checkpoint("o", -1, leaf_hash(b""))
        with pytest.raises(NoteError):
            Checkpoint("o", 1, b"short")
