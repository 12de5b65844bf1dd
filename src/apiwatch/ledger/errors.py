"""Errors of the ledger: one root, and the two ways integrity checks fail (proofs, notes)."""

from __future__ import annotations

from apiwatch.errors import ApiwatchError


class LedgerError(ApiwatchError):
    """Root of every error the ledger raises on purpose."""


class StorageError(LedgerError):
    """The disk refused a write (full, quota, I/O error); the ledger is as it was before it."""


class ProofError(LedgerError):
    """A Merkle inclusion or consistency proof does not verify; the message says why."""


class NoteError(LedgerError):
    """A signed note or checkpoint is malformed, unsigned by a known key, or badly signed.

    `reason` is a short stable code for programs: ``malformed``, ``unverified`` (no signature by
    a known key), ``bad-signature`` (a known key's signature does not verify) or ``bad-key``
    (a key string cannot be parsed). The message is for people.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


class KeyringError(LedgerError):
    """A key directory is missing, inconsistent, or asked for an impossible change."""
