"""Evidence bundles: chosen ledger records that anyone holding the log's vkey can verify alone.

A bundle is one JSON file::

    {"format": "apiwatch-evidence-bundle/1",
     "checkpoint": "<signed checkpoint note, C2SP>",
     "records": [{"index": 12, "data": "<base64>", "proof": ["<base64 hash>", ...]}, ...]}

Each record's RFC 6962 leaf hash must lead, through its inclusion proof, to the root of the
signed checkpoint (RFC 9162 section 2.1.3.2), so a record cannot be altered, dropped from the
log or moved to another index without the bundle failing.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apiwatch.ledger.checkpoint import Checkpoint, open_checkpoint
from apiwatch.ledger.errors import LedgerError, NoteError, ProofError
from apiwatch.ledger.merkle import leaf_hash
from apiwatch.ledger.note import Verifier
from apiwatch.ledger.proofs import verify_inclusion

__all__ = ["BUNDLE_FORMAT", "BundleReport", "verify_bundle", "write_bundle"]

BUNDLE_FORMAT = "apiwatch-evidence-bundle/1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_bundle(
    records: Sequence[tuple[int, bytes]],
    proofs: Sequence[Sequence[bytes]],
    signed_checkpoint: bytes,
    path: str | os.PathLike[str],
) -> None:
    """Write `records` (index, bytes) with their inclusion `proofs` at the checkpoint's size."""
    if len(records) != len(proofs):
        raise LedgerError(f"{len(records)} records but {len(proofs)} proofs")
    bundle = {
        "format": BUNDLE_FORMAT,
        "checkpoint": signed_checkpoint.decode("utf-8"),
        "records": [
            {"index": index, "data": _b64(data), "proof": [_b64(h) for h in proof]}
            for (index, data), proof in zip(records, proofs, strict=True)
        ],
    }
    Path(path).write_text(json.dumps(bundle, indent=1) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class BundleReport:
    """What a bundle proved: the checkpoint, who signed it, the records that verified."""

    checkpoint: Checkpoint | None
    verified_by: tuple[str, ...]  # vkeys whose signature on the checkpoint verified
    verified: tuple[int, ...]  # indexes of records proven included
    failures: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the checkpoint and every record verified."""
        return self.checkpoint is not None and not self.failures


def _record(item: Any) -> tuple[int, bytes, list[bytes]]:
    """(index, data, proof) of one record entry; raises ValueError/TypeError/KeyError if bad."""
    index = item["index"]
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError("index is not an integer")
    data = base64.b64decode(item["data"], validate=True)
    proof = [base64.b64decode(h, validate=True) for h in item["proof"]]
    return index, data, proof


def verify_bundle(path: str | os.PathLike[str], verifiers: Sequence[Verifier]) -> BundleReport:
    """Check a bundle against trusted `verifiers`; content problems are listed in the report.

    Raises `LedgerError` only when the file cannot be read at all.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise LedgerError(f"cannot read bundle {path}: {exc.strerror}") from None
    try:
        bundle = json.loads(raw)
        if bundle["format"] != BUNDLE_FORMAT:
            raise ValueError(f"format {bundle['format']!r}")
        note_text, items = bundle["checkpoint"].encode(), list(bundle["records"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return BundleReport(None, (), (), (f"not an evidence bundle: {exc!r}",))
    try:
        cp, note = open_checkpoint(note_text, verifiers)
    except NoteError as exc:
        return BundleReport(None, (), (), (f"checkpoint: {exc}",))
    verified: list[int] = []
    failures: list[str] = []
    for n, item in enumerate(items):
        try:
            index, data, proof = _record(item)
            verify_inclusion(leaf_hash(data), index, cp.size, proof, cp.root_hash)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            failures.append(f"record #{n}: malformed entry: {exc!r}")
        except ProofError as exc:
            failures.append(f"record #{n} (index {index}): {exc}")
        else:
            verified.append(index)
    if not items:
        failures.append("the bundle holds no records")
    signers = tuple(v.vkey for v in note.verified_by)
    return BundleReport(cp, signers, tuple(verified), tuple(failures))
