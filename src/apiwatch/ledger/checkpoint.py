"""C2SP tlog-checkpoint: a log's origin, size and root hash, carried in a signed note.

The body (C2SP ``tlog-checkpoint``) is the origin line, the tree size in decimal ASCII without
leading zeros, the RFC 6962 root hash in standard base64, then optional non-empty extension
lines, each line ending in a newline. Go's ``sumdb/tlog.FormatTree`` writes the same body.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from apiwatch.ledger.errors import NoteError
from apiwatch.ledger.merkle import HASH_SIZE
from apiwatch.ledger.note import Note, Signer, Verifier, open_note, sign_note

__all__ = ["Checkpoint", "open_checkpoint", "sign_checkpoint"]

_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_MAX_SIZE = 2**64 - 1


def _check_line(line: str, what: str) -> None:
    if not line or any(c < " " for c in line):
        raise NoteError("malformed", f"checkpoint {what} is empty or has control characters")


@dataclass(frozen=True)
class Checkpoint:
    """The state of a log: `size` leaves whose RFC 6962 root is `root_hash`."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if not 0 <= self.size <= _MAX_SIZE:
            raise NoteError("malformed", f"checkpoint size {self.size} is out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise NoteError("malformed", f"a root hash is {HASH_SIZE} bytes")
        for line in self.extensions:
            _check_line(line, "extension line")

    def body(self) -> str:
        """The checkpoint text, i.e. the note text to sign."""
        lines = (self.origin, str(self.size), base64.b64encode(self.root_hash).decode())
        return "".join(f"{line}\n" for line in (*lines, *self.extensions))

    @classmethod
    def parse(cls, text: str, origin: str | None = None) -> Checkpoint:
        """Parse a checkpoint body, optionally requiring `origin`; raises `NoteError`."""
        if not text.endswith("\n"):
            raise NoteError("malformed", "a checkpoint ends with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("malformed", "a checkpoint has origin, size and root hash lines")
        if origin is not None and lines[0] != origin:
            raise NoteError("malformed", f"checkpoint origin {lines[0]!r} is not {origin!r}")
        if not _SIZE.fullmatch(lines[1]):
            raise NoteError("malformed", f"checkpoint size {lines[1][:30]!r} is not decimal")
        root_line = lines[2]
        try:
            root = base64.b64decode(root_line, validate=True)
        except ValueError:
            raise NoteError("malformed", "checkpoint root hash is not base64") from None
        if len(root) != HASH_SIZE or base64.b64encode(root).decode() != root_line:
            raise NoteError("malformed", "checkpoint root hash is not 32 bytes in base64")
        return cls(lines[0], int(lines[1]), root, tuple(lines[3:]))


def sign_checkpoint(cp: Checkpoint, signers: Sequence[Signer]) -> bytes:
    """The checkpoint as a signed note (C2SP: the log's key name should be its origin)."""
    return sign_note(cp.body(), signers)


def open_checkpoint(
    msg: bytes, verifiers: Sequence[Verifier], origin: str | None = None
) -> tuple[Checkpoint, Note]:
    """Verify a signed checkpoint (see `open_note`) and parse its body; raises `NoteError`."""
    note = open_note(msg, verifiers)
    return Checkpoint.parse(note.text, origin), note
