"""C2SP signed notes with Ed25519 keys, compatible with Go's ``golang.org/x/mod/sumdb/note``.

A note (C2SP ``signed-note``) is UTF-8 text ending in a newline, a blank line, then one line per
signature: ``— <key name> <base64(key id[4] || signature)>``. Key strings are Go's:

- vkey: ``<name>+<key id, 8 hex digits>+<base64(0x01 || Ed25519 public key)>``
- skey: ``PRIVATE+KEY+<name>+<key id>+<base64(0x01 || Ed25519 seed)>``

where the key id is the first 4 bytes (big endian) of ``SHA-256(name || "\\n" || 0x01 || key)``.
Parsing follows Go's rules: no control characters but newline, split at the last blank line,
at most 100 signatures, signatures by unknown keys are kept but do not count, a bad signature by
a known key rejects the whole note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from apiwatch.ledger.errors import NoteError

__all__ = [
    "Note",
    "NoteSignature",
    "Signer",
    "Verifier",
    "add_signatures",
    "generate_key",
    "open_note",
    "parse_note",
    "sign_note",
]

_ALG_ED25519 = 1
_SIG_PREFIX = "\u2014 "  # an em dash and a space open every signature line
_MAX_SIGNATURES = 100  # Go's cap; the spec asks verifiers to accept at least 16


def _valid_name(name: str) -> bool:
    """Go's isValidName: non-empty, no whitespace, no '+'."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _key_id(name: str, key: bytes) -> int:
    """The 32-bit key id of `key` (algorithm byte included) under `name`."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + key).digest()[:4], "big")


def _b64decode(text: str, what: str, reason: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(reason, f"{what} is not valid base64") from None


def _parse_key(parts: list[str], what: str) -> tuple[str, int, bytes]:
    """Name, key id and raw 32-byte key from ``[name, hex id, base64(alg || key)]``."""
    if len(parts) != 3:
        raise NoteError("bad-key", f"a {what} has the form name+keyid+key")
    name, hex_id, b64 = parts
    if not _valid_name(name):
        raise NoteError("bad-key", f"invalid key name {name!r} in {what}")
    if len(hex_id) != 8 or any(c not in "0123456789abcdefABCDEF" for c in hex_id):
        raise NoteError("bad-key", f"key id {hex_id!r} in {what} is not 8 hex digits")
    key = _b64decode(b64, f"the key in a {what}", "bad-key")
    if len(key) != 33 or key[0] != _ALG_ED25519:
        raise NoteError("bad-key", f"{what} for {name} is not an Ed25519 key")
    if _key_id(name, key) != int(hex_id, 16):
        raise NoteError("bad-key", f"key id {hex_id} does not match the key of {name}")
    return name, int(hex_id, 16), key[1:]


def _encode_key(name: str, key_id: int, raw: bytes) -> str:
    return f"{name}+{key_id:08x}+{base64.b64encode(bytes([_ALG_ED25519]) + raw).decode()}"


class Verifier:
    """Checks Ed25519 note signatures by one named key."""

    def __init__(self, name: str, public_key: bytes) -> None:
        if not _valid_name(name):
            raise NoteError("bad-key", f"invalid key name {name!r}")
        self.name = name
        self._raw = public_key
        self._key = Ed25519PublicKey.from_public_bytes(public_key)
        self.key_id = _key_id(name, bytes([_ALG_ED25519]) + public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse a vkey ``name+keyid+base64``; raises `NoteError` (reason ``bad-key``)."""
        # Split on the first two '+' only: base64 key material may contain '+'.
        name, _, public_key = _parse_key(vkey.strip().split("+", 2), "vkey")
        return cls(name, public_key)

    @property
    def vkey(self) -> str:
        """This key as a vkey string."""
        return _encode_key(self.name, self.key_id, self._raw)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Whether `sig` is this key's Ed25519 signature of `msg`."""
        try:
            self._key.verify(sig, msg)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"Verifier({self.name}+{self.key_id:08x})"


class Signer:
    """Makes Ed25519 note signatures with one named private key."""

    def __init__(self, name: str, seed: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = Verifier(name, public)
        self.name = name
        self.key_id = self.verifier.key_id

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        """Parse a Go skey ``PRIVATE+KEY+name+keyid+base64``; raises `NoteError` on a bad key."""
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("bad-key", "an skey has the form PRIVATE+KEY+name+keyid+key")
        name, hex_id, b64 = parts[2:]
        seed = _b64decode(b64, "the key in an skey", "bad-key")
        if len(seed) != 33 or seed[0] != _ALG_ED25519:
            raise NoteError("bad-key", f"skey for {name} is not an Ed25519 key")
        signer = cls(name, seed[1:])
        # The id in an skey is the *public* key's id (as in Go's NewSigner).
        _parse_key([name, hex_id, signer.vkey.split("+", 2)[2]], "skey")
        return signer

    @property
    def vkey(self) -> str:
        """The matching verifier key string."""
        return self.verifier.vkey

    def sign(self, msg: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `msg` (deterministic)."""
        return self._key.sign(msg)

    def __repr__(self) -> str:
        return f"Signer({self.name}+{self.key_id:08x})"


def generate_key(name: str) -> tuple[str, str]:
    """A new Ed25519 key named `name`, as ``(skey, vkey)`` strings in Go's format."""
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    signer = Signer(name, seed)
    return "PRIVATE+KEY+" + _encode_key(name, signer.key_id, seed), signer.vkey


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: the key's name and id, and the signature bytes after the id."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """The signature line, newline included."""
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"


@dataclass
class Note:
    """A parsed note: its text, every signature in it, and the verifiers that accepted it."""

    text: str
    signatures: list[NoteSignature]
    verified_by: list[Verifier] = field(default_factory=list)

    @property
    def unverified(self) -> list[NoteSignature]:
        """Signatures by keys not among `verified_by` (unknown keys, e.g. witnesses)."""
        known = {(v.name, v.key_id) for v in self.verified_by}
        return [s for s in self.signatures if (s.name, s.key_id) not in known]


def _check_text(text: str) -> None:
    for c in text:
        if (c < " " and c != "\n") or c == "\ufffd":
            raise NoteError("malformed", f"the note text contains the character {c!r}")


def _as_text(msg: str | bytes) -> str:
    if isinstance(msg, str):
        return msg
    try:
        return msg.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("malformed", "the note is not valid UTF-8") from None


def parse_note(msg: str | bytes) -> Note:
    """Split a signed note into text and signatures without verifying any (`verified_by` empty)."""
    whole = _as_text(msg)
    _check_text(whole)
    split = whole.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed", "no blank line between the text and the signatures")
    text, block = whole[: split + 1], whole[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("malformed", "the signature block is empty or lacks its final newline")
    lines = block[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise NoteError("malformed", f"{len(lines)} signatures, more than {_MAX_SIGNATURES}")
    signatures: list[NoteSignature] = []
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise NoteError("malformed", f"not a signature line: {line[:40]!r}")
        name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not _valid_name(name) or not b64:
            raise NoteError("malformed", f"bad signature line: {line[:40]!r}")
        blob = _b64decode(b64, f"the signature by {name}", "malformed")
        if len(blob) < 5:
            raise NoteError("malformed", f"the signature by {name} is too short")
        sig = NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:])
        if sig not in signatures:  # Go drops repeated identical lines
            signatures.append(sig)
    return Note(text, signatures)


def open_note(msg: str | bytes, verifiers: Sequence[Verifier]) -> Note:
    """Parse a note and check its signatures; at least one must be by a key in `verifiers`.

    Raises `NoteError`: ``malformed``, ``bad-signature`` (a known key's signature fails; the
    whole note is rejected) or ``unverified`` (no signature by a known key).
    """
    note = parse_note(msg)
    known = {(v.name, v.key_id): v for v in verifiers}
    signed = note.text.encode()
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None or verifier in note.verified_by:
            continue
        if not verifier.verify(signed, sig.signature):
            raise NoteError("bad-signature", f"the signature by {verifier.name} does not verify")
        note.verified_by.append(verifier)
    if not note.verified_by:
        present = ", ".join(f"{s.name}+{s.key_id:08x}" for s in note.signatures)
        raise NoteError("unverified", f"no signature by a known key (signed by: {present})")
    return note


def _signature_lines(text: str, signers: Sequence[Signer]) -> list[NoteSignature]:
    if not text.endswith("\n"):
        raise NoteError("malformed", "a note's text must end with a newline")
    _check_text(text)
    return [NoteSignature(s.name, s.key_id, s.sign(text.encode())) for s in signers]


def sign_note(text: str | bytes, signers: Sequence[Signer]) -> bytes:
    """Sign `text` (ending in a newline) with every signer; the signed note's bytes."""
    if not signers:
        raise NoteError("malformed", "a note needs at least one signer")
    text = _as_text(text)
    lines = _signature_lines(text, signers)
    return (text + "\n" + "".join(sig.line() for sig in lines)).encode()


def add_signatures(msg: bytes, signers: Sequence[Signer]) -> bytes:
    """Cosign an already signed note: add the signers' lines, replacing their older ones.

    Existing signatures are kept as they are, unverified (a witness cosigns what it has checked).
    """
    note = parse_note(msg)
    new = _signature_lines(note.text, signers)
    ids = {(s.name, s.key_id) for s in new}
    kept = [s for s in note.signatures if (s.name, s.key_id) not in ids]
    return (note.text + "\n" + "".join(s.line() for s in kept + new)).encode()
