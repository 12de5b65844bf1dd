"""The files of a ledger directory and its settings (``ledger.json``).

```
<dir>/ledger.json            origin and settings
<dir>/segments/N.log, N.idx  records (see `apiwatch.ledger.segments`)
<dir>/tree/                  stored Merkle nodes (`apiwatch.ledger.merkle.FileNodeStore`)
<dir>/checkpoints/SIZE.note  signed checkpoints by tree size, and `latest`, a copy of the newest
<dir>/keys/                  the signing keyring (`apiwatch.ledger.keys.Keyring`)
```
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from apiwatch.ledger.checkpoint import Checkpoint
from apiwatch.ledger.errors import LedgerError, NoteError
from apiwatch.ledger.note import parse_note
from apiwatch.ledger.segments import DEFAULT_ROLL_SIZE, fsync_directory

__all__ = [
    "CHECKPOINTS_DIR",
    "KEYS_DIR",
    "LATEST",
    "LEDGER_FILE",
    "SEGMENTS_DIR",
    "TREE_DIR",
    "LedgerSettings",
    "checkpoint_files",
    "claimed_checkpoint",
    "read_latest",
    "write_checkpoint",
]

LEDGER_FILE = "ledger.json"
SEGMENTS_DIR = "segments"
TREE_DIR = "tree"
CHECKPOINTS_DIR = "checkpoints"
KEYS_DIR = "keys"
LATEST = "latest"
_NOTE_SUFFIX = ".note"


@dataclass(frozen=True)
class LedgerSettings:
    """A ledger's origin and policies, as stored in ``ledger.json``."""

    origin: str
    roll_size: int = DEFAULT_ROLL_SIZE
    durable: bool = True  # fsync segments before `append_batch` returns
    checkpoint_records: int = 10_000  # `maybe_checkpoint` signs after this many new records
    checkpoint_seconds: float = 10.0  # ... or after this long with anything new

    @classmethod
    def load(cls, directory: Path) -> LedgerSettings:
        """Read ``<directory>/ledger.json``; raises `LedgerError` if absent or invalid."""
        path = directory / LEDGER_FILE
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise LedgerError(f"{directory} is not a ledger (no {LEDGER_FILE})") from None
        except (OSError, ValueError) as exc:
            raise LedgerError(f"cannot read {path}: {exc}") from None
        known = {f.name for f in fields(cls)}
        if not isinstance(raw, dict) or not isinstance(raw.get("origin"), str):
            raise LedgerError(f"{path} must be an object with an origin")
        try:
            return cls(**{k: v for k, v in raw.items() if k in known})
        except TypeError as exc:
            raise LedgerError(f"invalid settings in {path}: {exc}") from None

    def save(self, directory: Path) -> None:
        """Write ``<directory>/ledger.json``."""
        text = json.dumps(asdict(self), indent=2) + "\n"
        _write_atomic(directory / LEDGER_FILE, text.encode())


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` durably: a crash leaves the old or the new file, whole."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent)


def checkpoint_files(directory: Path) -> list[tuple[int, Path]]:
    """The ``SIZE.note`` files of a ledger directory with the size their name gives, by size."""
    folder = directory / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    found = [
        (int(p.name[: -len(_NOTE_SUFFIX)]), p)
        for p in folder.glob("*" + _NOTE_SUFFIX)
        if p.name[: -len(_NOTE_SUFFIX)].isdigit()
    ]
    return sorted(found)


def write_checkpoint(directory: Path, size: int, msg: bytes) -> None:
    """Store a signed checkpoint as ``SIZE.note`` and as ``latest``."""
    folder = directory / CHECKPOINTS_DIR
    folder.mkdir(exist_ok=True)
    _write_atomic(folder / f"{size}{_NOTE_SUFFIX}", msg)
    _write_atomic(folder / LATEST, msg)


def read_latest(directory: Path) -> bytes | None:
    """The bytes of ``checkpoints/latest``, or None if no checkpoint was signed yet."""
    try:
        return (directory / CHECKPOINTS_DIR / LATEST).read_bytes()
    except FileNotFoundError:
        return None


def claimed_checkpoint(msg: bytes) -> Checkpoint | None:
    """The checkpoint a note claims, signatures unchecked; None if it does not parse."""
    try:
        return Checkpoint.parse(parse_note(msg).text)
    except NoteError:
        return None
