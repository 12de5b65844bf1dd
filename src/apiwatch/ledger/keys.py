"""The ledger's signing keys on disk: a keyring directory with rotation and retirement.

```
<keys>/keyring.json      which key does what: {"keys": [{"name", "role", "created"}, ...]}
<keys>/<name>.skey       Go-format private key, mode 0600 (active and witness keys only)
<keys>/<name>.vkey       Go-format public key, safe to publish
```

Roles: ``active`` keys sign every checkpoint (two active keys = dual signing during a rotation),
``retired`` keys only verify old checkpoints (their skey is deleted on retirement), the one
optional ``witness`` key cosigns checkpoints as a second party would (an extra Ed25519 note
signature), and a ``retired-witness`` key does nothing but stay listed. Names are note key
names; in file names every character but ``[A-Za-z0-9._-]`` is percent-encoded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from apiwatch.ledger.errors import KeyringError, NoteError
from apiwatch.ledger.note import Signer, Verifier, generate_key

__all__ = ["ACTIVE", "RETIRED", "RETIRED_WITNESS", "WITNESS", "KeyEntry", "Keyring"]

ACTIVE = "active"
RETIRED = "retired"
WITNESS = "witness"
RETIRED_WITNESS = "retired-witness"
_ROLES = (ACTIVE, RETIRED, WITNESS, RETIRED_WITNESS)
_KEYRING = "keyring.json"


@dataclass(frozen=True)
class KeyEntry:
    """One key of the ring: its note key name, role, creation time and public key."""

    name: str
    role: str
    created: str
    vkey: str


def _write_new(path: Path, data: str, mode: int) -> None:
    """Create `path` with `mode` (never overwriting) and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class Keyring:
    """The keys in one directory; every change is written through at once."""

    def __init__(self, directory: Path, entries: list[KeyEntry]) -> None:
        self.directory = directory
        self._entries = entries

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Keyring:
        """Read the keyring in `directory`; raises `KeyringError` if it is absent or broken."""
        path = Path(directory)
        try:
            raw = json.loads((path / _KEYRING).read_bytes())
            ring = cls(path, [])
            for item in raw["keys"]:
                name, role, created = item["name"], item["role"], item["created"]
                if role not in _ROLES:
                    raise ValueError(f"unknown role {role!r} of key {name!r}")
                vkey = (path / f"{quote(name, safe='')}.vkey").read_text().strip()
                ring._entries.append(KeyEntry(name, role, created, vkey))
        except FileNotFoundError as exc:
            raise KeyringError(f"no keyring at {path} ({exc.filename} missing)") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyringError(f"unreadable keyring at {path}: {exc!r}") from None
        return ring

    @staticmethod
    def exists(directory: str | os.PathLike[str]) -> bool:
        """Whether `directory` holds a keyring."""
        return (Path(directory) / _KEYRING).exists()

    @classmethod
    def create(cls, directory: str | os.PathLike[str], name: str) -> Keyring:
        """Make a new keyring in `directory` with one active key `name`."""
        path = Path(directory)
        if (path / _KEYRING).exists():
            raise KeyringError(f"a keyring already exists at {path}")
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        ring = cls(path, [])
        ring._add(name, ACTIVE)
        return ring

    @property
    def entries(self) -> list[KeyEntry]:
        """Every key, in the order they were added."""
        return list(self._entries)

    def _file(self, name: str, suffix: str) -> Path:
        return self.directory / f"{quote(name, safe='')}{suffix}"

    def _entry(self, name: str) -> KeyEntry:
        for entry in self._entries:
            if entry.name == name:
                return entry
        raise KeyringError(f"no key named {name!r} in {self.directory}")

    def _add(self, name: str, role: str) -> KeyEntry:
        if any(entry.name == name for entry in self._entries):
            raise KeyringError(f"a key named {name!r} already exists")
        try:
            skey, vkey = generate_key(name)
        except NoteError as exc:
            raise KeyringError(f"cannot use {name!r} as a key name: {exc}") from None
        _write_new(self._file(name, ".skey"), skey + "\n", 0o600)
        _write_new(self._file(name, ".vkey"), vkey + "\n", 0o644)
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        entry = KeyEntry(name, role, created, vkey)
        self._entries.append(entry)
        self._save()
        return entry

    def _save(self) -> None:
        keys = [{"name": e.name, "role": e.role, "created": e.created} for e in self._entries]
        tmp = self.directory / f"{_KEYRING}.tmp"
        tmp.unlink(missing_ok=True)
        _write_new(tmp, json.dumps({"keys": keys}, indent=2) + "\n", 0o644)
        os.replace(tmp, self.directory / _KEYRING)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _signer(self, entry: KeyEntry) -> Signer:
        try:
            signer = Signer.from_skey(self._file(entry.name, ".skey").read_text())
        except (OSError, NoteError) as exc:
            raise KeyringError(f"cannot load the private key {entry.name!r}: {exc}") from None
        if signer.vkey != entry.vkey:
            raise KeyringError(f"the skey and vkey files of {entry.name!r} do not match")
        return signer

    def signers(self) -> list[Signer]:
        """Signers for every active key (more than one while a rotation is in progress)."""
        return [self._signer(e) for e in self._entries if e.role == ACTIVE]

    def verifiers(self) -> list[Verifier]:
        """Verifiers for the log's keys, active and retired (not the witness)."""
        return [Verifier.from_vkey(e.vkey) for e in self._entries if e.role in (ACTIVE, RETIRED)]

    def witness_signer(self) -> Signer | None:
        """The witness (cosigner) key's signer, if the ring has one."""
        entry = next((e for e in self._entries if e.role == WITNESS), None)
        return self._signer(entry) if entry else None

    def witness_verifier(self) -> Verifier | None:
        """The witness key's verifier, if the ring has one."""
        entry = next((e for e in self._entries if e.role == WITNESS), None)
        return Verifier.from_vkey(entry.vkey) if entry else None

    def rotate(self, new_name: str) -> KeyEntry:
        """Add a new active key; old active keys keep signing until `retire`d (dual signing)."""
        return self._add(new_name, ACTIVE)

    def add_witness(self, name: str) -> KeyEntry:
        """Generate the witness (cosigner) key; a ring holds at most one."""
        if any(e.role == WITNESS for e in self._entries):
            raise KeyringError("the keyring already has a witness key; retire it first")
        return self._add(name, WITNESS)

    def retire(self, name: str) -> KeyEntry:
        """Stop signing with `name` and delete its private key; its vkey still verifies.

        A retired witness key is dropped from every role (it never verified log checkpoints).
        """
        entry = self._entry(name)
        if entry.role in (RETIRED, RETIRED_WITNESS):
            raise KeyringError(f"key {name!r} is already retired")
        if entry.role == ACTIVE and sum(e.role == ACTIVE for e in self._entries) == 1:
            raise KeyringError(f"{name!r} is the only active key; rotate to a new key first")
        role = RETIRED if entry.role == ACTIVE else RETIRED_WITNESS
        retired = KeyEntry(name, role, entry.created, entry.vkey)
        self._entries[self._entries.index(entry)] = retired
        self._save()
        self._file(name, ".skey").unlink(missing_ok=True)
        return retired
