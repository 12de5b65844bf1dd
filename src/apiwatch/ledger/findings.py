"""What `apiwatch verify` reports: findings with a stable kind, a record index and a detail."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["KINDS", "WARNINGS", "Finding", "VerifyResult"]

# kind -> meaning; `index` is a record index or, for checkpoint kinds, a tree size.
KINDS = {
    "modified": "a record's bytes differ from the signed record at that position",
    "missing": "a signed record is gone (the records after it are shifted)",
    "inserted": "a record that was never signed sits among signed ones",
    "reordered": "a signed record sits at another position than the one signed",
    "truncated": "the log ends before the size a checkpoint signs",
    "root_mismatch": "records in a checkpoint range do not reproduce its signed root",
    "tree_mismatch": "the stored tree does not reproduce a signed root (tree files rewritten)",
    "inconsistent": "a checkpoint is not a prefix of a later one (consistency proof fails)",
    "split_view": "two signed checkpoints of the same size have different roots",
    "rollback": "the latest checkpoint is older than one already seen",
    "bad_signature": "a known key's signature on a checkpoint does not verify",
    "unknown_signature": "a checkpoint is signed by no trusted key",
    "retired_key": "a checkpoint newer than a key's retirement is signed only by that key",
    "malformed_checkpoint": "a checkpoint file is not a signed checkpoint",
    "origin_mismatch": "a checkpoint names another log's origin",
    "segment_gap": "a segment file does not start where the previous one ends",
    "unsigned_tail": "records after the last signed checkpoint (normal between checkpoints)",
    "torn": "a partial last record, as a crash leaves it (cut when the ledger next opens)",
}
# Kinds that are not evidence of tampering: they do not make verification fail.
WARNINGS = frozenset({"unsigned_tail", "torn"})


@dataclass(frozen=True)
class Finding:
    """One thing verification found; `index` locates it (None when nothing more precise)."""

    kind: str
    index: int | None
    detail: str

    @property
    def tampering(self) -> bool:
        """True unless the kind is a mere warning."""
        return self.kind not in WARNINGS

    def to_json(self) -> dict[str, Any]:
        """The JSON object of `apiwatch verify --json`."""
        return {"kind": self.kind, "index": self.index, "detail": self.detail}


@dataclass
class VerifyResult:
    """The outcome of verifying a ledger of `size` records."""

    size: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no finding is evidence of tampering."""
        return not any(f.tampering for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        """``{"ok": bool, "size": int, "findings": [...]}``."""
        return {
            "ok": self.ok,
            "size": self.size,
            "findings": [f.to_json() for f in self.findings],
        }
