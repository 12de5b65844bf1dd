"""Verify a ledger directory against its signed checkpoints, read-only.

Every record is hashed again (RFC 6962 leaf hashes) and every signed root recomputed from the
leaves; nothing derived (offsets index, stored inner nodes) is trusted. Once the *stored* leaf
hashes are shown to reproduce the signed roots they are the signed sequence, and the recomputed
leaves are aligned against them to name each record modified, missing, inserted or reordered.
If the tree files were rewritten too, only the checkpoint ranges that fail can be named.
Checkpoints are checked against each other with RFC 6962 consistency proofs, against a pinned
trusted checkpoint (rollback, split view), and their signatures against the keyring or against
verification keys given from elsewhere (then the ledger's own ``keys/`` is not trusted).
A large ledger is hashed on every core (`apiwatch.ledger._parallel`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import overload

from apiwatch.ledger._parallel import HashedRecords, hash_segments
from apiwatch.ledger.checkpoint import Checkpoint, open_checkpoint
from apiwatch.ledger.errors import LedgerError, NoteError, ProofError
from apiwatch.ledger.findings import Finding, VerifyResult
from apiwatch.ledger.keys import ACTIVE, Keyring
from apiwatch.ledger.layout import (
    CHECKPOINTS_DIR,
    KEYS_DIR,
    LATEST,
    SEGMENTS_DIR,
    TREE_DIR,
    LedgerSettings,
    checkpoint_files,
)
from apiwatch.ledger.merkle import HASH_SIZE, FileNodeStore, MemoryNodeStore, MerkleTree
from apiwatch.ledger.note import Verifier, parse_note
from apiwatch.ledger.proofs import verify_consistency
from apiwatch.ledger.segments import list_segments

__all__ = ["SignedLeaves", "split_records", "verify_ledger"]

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)
_BLOCK = 4096  # leaves compared per step when looking for the first difference


def split_records(data: bytes) -> tuple[list[bytes], int]:
    """A segment's records and the length of a partial last line (0 if it ends in a newline)."""
    lines = data.split(b"\n")
    return lines[:-1], len(lines[-1])


class _LeafRun(Sequence[bytes]):
    """Leaf hashes kept as one run of 32-byte hashes, as hashing and the tree files give them."""

    def __init__(self, run: bytes) -> None:
        self.run = run

    def __len__(self) -> int:
        return len(self.run) // HASH_SIZE

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        run = self.run
        if isinstance(index, slice):
            start, stop, step = (HASH_SIZE * i for i in index.indices(len(self)))
            return [run[at : at + HASH_SIZE] for at in range(start, stop, step)]
        if not -len(self) <= index < len(self):
            raise IndexError(f"leaf {index} is outside 0..{len(self) - 1}")
        at = index % len(self) * HASH_SIZE
        return run[at : at + HASH_SIZE]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self[:])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _LeafRun):
            return self.run == other.run
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.run)


class _Roots:
    """An in-memory tree over some leaf hashes, built on first use unless one is given."""

    def __init__(self, leaves: Sequence[bytes], tree: MerkleTree | None = None) -> None:
        self.leaves = leaves
        self._tree = tree

    @property
    def tree(self) -> MerkleTree:
        if self._tree is None:
            self._tree = MerkleTree(MemoryNodeStore())
            self._tree.extend(self.leaves)
        return self._tree

    def reproduces(self, cp: Checkpoint) -> bool:
        return cp.size <= len(self.leaves) and self.tree.root(cp.size) == cp.root_hash


def _first_difference(a: Sequence[bytes], b: Sequence[bytes]) -> int:
    n = min(len(a), len(b))
    p = 0
    while p < n and a[p : p + _BLOCK] == b[p : p + _BLOCK]:
        p += _BLOCK
    while p < n and a[p] == b[p]:
        p += 1
    return min(p, n)


@dataclass
class _Alignment:
    findings: list[Finding]
    missing: int = 0  # signed records gone (not counting a cut end)
    inserted: int = 0  # records never signed among signed ones (not counting the tail)


def _align(stored: Sequence[bytes], leaves: Sequence[bytes]) -> _Alignment:
    """Locate how `leaves` (recomputed) differ from `stored` (shown to be the signed ones)."""
    p = _first_difference(stored, leaves)
    s = _first_difference(stored[p:][::-1], leaves[p:][::-1])
    mid_s, mid_r = stored[p : len(stored) - s], leaves[p : len(leaves) - s]
    ops = [op for op in SequenceMatcher(None, mid_s, mid_r, autojunk=False).get_opcodes()
           if op[0] != "equal"]
    removed = {mid_s[i]: p + i for _, i1, i2, _, _ in ops for i in range(i1, i2)}
    added = {mid_r[j] for _, _, _, j1, j2 in ops for j in range(j1, j2)}
    moved = added & removed.keys()
    out = _Alignment([])
    for _, i1, i2, j1, j2 in ops:
        gone = [p + i for i in range(i1, i2) if mid_s[i] not in moved]
        new = [p + j for j in range(j1, j2) if mid_r[j] not in moved]
        pairs = min(len(gone), len(new))
        for i, j in zip(gone[:pairs], new[:pairs], strict=True):
            where = "" if i == j else f" (signed at position {i})"
            out.findings.append(Finding(
                "modified", j, f"record {j} differs from the signed record{where}"))
        # What is left over at the very end is a cut (truncation) or the unsigned tail.
        if not (s == 0 and i2 == len(mid_s) and j2 == len(mid_r)):
            out.missing += len(gone) - pairs
            out.inserted += len(new) - pairs
            out.findings += [Finding("missing", i, f"signed record {i} is missing")
                             for i in gone[pairs:]]
            out.findings += [Finding("inserted", j, f"record {j} was never signed")
                             for j in new[pairs:]]
        out.findings += [
            Finding("reordered", p + j, f"record {p + j} was signed at position "
                    f"{removed[mid_r[j]]}")
            for j in range(j1, j2) if mid_r[j] in moved
        ]
    out.findings.sort(key=lambda f: (f.index or 0, f.kind))
    return out


class SignedLeaves:
    """Stored leaf hashes and the signed checkpoints they must reproduce.

    Built once, it checks any number of recomputed leaf sequences (`check`), which is what
    `verify_ledger` does with the records it reads. `tree`, if given, is the tree over
    `stored`, already built.
    """

    def __init__(self, stored: Sequence[bytes], checkpoints: Sequence[Checkpoint],
                 tree: MerkleTree | None = None) -> None:
        self.stored = _Roots(stored, tree)
        self.checkpoints = sorted(checkpoints, key=lambda c: c.size)
        self.signed_size = max((c.size for c in self.checkpoints), default=0)
        by_size: dict[int, list[Checkpoint]] = {}
        for cp in self.checkpoints:
            by_size.setdefault(cp.size, []).append(cp)
        self._by_size = sorted(by_size.items())
        covered = [cps for size, cps in self._by_size if size <= len(stored)]
        failing = [cps[0].size for cps in covered
                   if not any(self.stored.reproduces(c) for c in cps)]
        # The stored leaves are the signed sequence when they reproduce every root they cover.
        self.trusted = bool(covered) and not failing
        self.tree_finding = None if not failing else Finding(
            "tree_mismatch", failing[0],
            f"the stored tree does not reproduce the root signed at size {failing[0]}")

    def check(self, leaves: Sequence[bytes], tree: MerkleTree | None = None) -> list[Finding]:
        """Findings for the recomputed leaf hashes `leaves` of the records, in log order
        (`tree`, if given, is the tree over them, already built)."""
        findings: list[Finding] = []
        same = leaves is self.stored.leaves or leaves == self.stored.leaves
        recomputed = self.stored if same else _Roots(leaves, tree)
        effective = len(leaves)  # the records the signed sequence accounts for
        if not same and self.trusted:
            aligned = _align(self.stored.leaves, leaves)
            findings += aligned.findings
            effective += aligned.missing - aligned.inserted
        elif not same and self.tree_finding:
            findings.append(self.tree_finding)
        # Sizes the stored leaves do not vouch for are checked against the records directly.
        vouched = len(self.stored.leaves) if self.trusted and not same else 0
        findings += self._ranges(recomputed, vouched)
        findings += self._consistency(recomputed)
        if effective < self.signed_size:
            findings.append(Finding(
                "truncated", len(leaves),
                f"records {effective}..{self.signed_size - 1} are missing: a checkpoint signs "
                f"{self.signed_size} records, the log holds {len(leaves)}"))
        elif effective > self.signed_size:
            tail = effective - self.signed_size
            findings.append(Finding(
                "unsigned_tail", self.signed_size,
                f"{tail} records after size {self.signed_size} are not signed yet"))
        return findings

    def _ranges(self, recomputed: _Roots, beyond: int) -> list[Finding]:
        """`root_mismatch` for the first range of records that no later checkpoint vouches for."""
        sizes = [(size, any(recomputed.reproduces(c) for c in cps))
                 for size, cps in self._by_size if beyond < size <= len(recomputed.leaves)]
        last_good = max((size for size, ok in sizes if ok), default=0)
        bad = [size for size, ok in sizes if not ok and size > last_good]
        if not bad:
            return []
        later = f" (and {len(bad) - 1} later checkpoints)" if len(bad) > 1 else ""
        return [Finding(
            "root_mismatch", last_good,
            f"records {last_good}..{bad[0] - 1} do not reproduce the root signed at size "
            f"{bad[0]}{later}")]

    def _consistency(self, recomputed: _Roots) -> list[Finding]:
        """RFC 6962 consistency proofs between successive signed sizes."""
        findings = []
        for (size1, older), (size2, newer) in zip(self._by_size, self._by_size[1:],
                                                   strict=False):
            for roots in (self.stored, recomputed):
                good = next((c for c in newer if roots.reproduces(c)), None)
                if good is not None:
                    break
            else:
                continue  # no tree vouches for size2: reported as records or tree findings
            proof = roots.tree.consistency_proof(size1, size2)
            for cp in older:
                try:
                    verify_consistency(size1, size2, proof, cp.root_hash, good.root_hash)
                except ProofError:
                    findings.append(Finding(
                        "inconsistent", size1,
                        f"the checkpoint of size {size1} is not a prefix of the one of size "
                        f"{size2}"))
        return findings


@dataclass(frozen=True)
class _Opened:
    checkpoint: Checkpoint
    source: str
    signers: frozenset[str]


def _open_file(msg: bytes, source: str, verifiers: Sequence[Verifier],
               findings: list[Finding]) -> _Opened | None:
    try:
        cp, note = open_checkpoint(msg, verifiers)
    except NoteError as exc:
        kind = {"bad-signature": "bad_signature",
                "unverified": "unknown_signature"}.get(exc.reason, "malformed_checkpoint")
        findings.append(Finding(kind, _claimed_size(msg), f"{source}: {exc}"))
        return None
    return _Opened(cp, source, frozenset(v.name for v in note.verified_by))


def _claimed_size(msg: bytes) -> int | None:
    lines = msg.split(b"\n", 2)
    return int(lines[1]) if len(lines) > 2 and lines[1].isdigit() else None


def _check_checkpoints(opened: list[_Opened], latest: _Opened | None, trusted: _Opened | None,
                       origin: str, retired: set[str]) -> list[Finding]:
    findings: list[Finding] = []
    for item in opened:
        if item.checkpoint.origin != origin:
            findings.append(Finding(
                "origin_mismatch", item.checkpoint.size,
                f"{item.source} names origin {item.checkpoint.origin!r}, not {origin!r}"))
    # A key stops vouching once a newer key has signed: anything later signed by it alone
    # is a checkpoint made with a retired key.
    current = [o.checkpoint.size for o in opened if o.signers - retired]
    for item in opened:
        if retired and current and not item.signers - retired and item.checkpoint.size > min(
                current):
            findings.append(Finding(
                "retired_key", item.checkpoint.size,
                f"{item.source} is signed only by retired key(s) "
                f"{', '.join(sorted(item.signers))}, after a newer key took over"))
    newest = max((o.checkpoint.size for o in opened), default=0)
    if latest is not None and latest.checkpoint.size < newest:
        findings.append(Finding(
            "rollback", latest.checkpoint.size,
            f"{LATEST} names size {latest.checkpoint.size} but a checkpoint of size {newest} "
            f"exists: an older checkpoint was replayed"))
    if trusted is not None and newest < trusted.checkpoint.size:
        findings.append(Finding(
            "rollback", newest,
            f"the ledger's newest checkpoint has size {newest}, smaller than the trusted "
            f"checkpoint's {trusted.checkpoint.size}"))
    roots: dict[int, set[bytes]] = {}
    for item in [*opened, *[o for o in (latest, trusted) if o]]:
        roots.setdefault(item.checkpoint.size, set()).add(item.checkpoint.root_hash)
    findings += [Finding("split_view", size, f"{len(r)} different roots are signed for size "
                         f"{size}") for size, r in sorted(roots.items()) if len(r) > 1]
    return findings


def _verifiers(
    directory: Path, given: Sequence[Verifier] | None
) -> tuple[Sequence[Verifier], set[str]]:
    """Trusted verifiers (given ones, else the keyring's) and the names of retired keys."""
    if given:
        return given, set()
    ring = Keyring.load(directory / KEYS_DIR)
    retired = {e.name for e in ring.entries if e.role != ACTIVE}
    return ring.verifiers(), retired


def _hash_records(directory: Path, progress: Progress | None,
                  findings: list[Finding]) -> HashedRecords:
    segments = list_segments(directory / SEGMENTS_DIR)
    hashed = hash_segments(segments, progress)
    count = 0  # records before the segment
    for n, (seg, (records, partial)) in enumerate(zip(segments, hashed.lines, strict=True)):
        if seg.first != count:
            findings.append(Finding(
                "segment_gap", count,
                f"segment {seg.log.name} starts at record {seg.first}, the previous ends at "
                f"{count}"))
        if partial and n == len(segments) - 1:  # only a crash on the last segment tears a line
            findings.append(Finding(
                "torn", count + records,
                f"a partial last record of {partial} bytes after record {count + records - 1}"))
        count += records
    return hashed


def _read_checkpoints(directory: Path, verifiers: Sequence[Verifier],
                      findings: list[Finding]) -> tuple[list[_Opened], _Opened | None]:
    opened = []
    for size, path in checkpoint_files(directory):
        item = _open_file(path.read_bytes(), f"checkpoint {path.name}", verifiers, findings)
        if item is not None:
            if item.checkpoint.size != size:
                findings.append(Finding(
                    "malformed_checkpoint", size,
                    f"checkpoint {path.name} holds size {item.checkpoint.size}"))
            opened.append(item)
    latest_path = directory / CHECKPOINTS_DIR / LATEST
    latest = None
    if latest_path.exists():
        latest = _open_file(latest_path.read_bytes(), LATEST, verifiers, findings)
    return opened, latest


def verify_ledger(
    directory: str | Path,
    *,
    trusted: bytes | None = None,
    verifiers: Sequence[Verifier] | None = None,
    progress: Progress | None = None,
) -> VerifyResult:
    """Verify the ledger in `directory`; raises `LedgerError` only if it cannot run at all.

    `trusted` is a signed checkpoint pinned from elsewhere (its content is trusted even if the
    ledger's keys do not verify it); `verifiers`, keys known from elsewhere, replace the ledger's
    own keyring.
    """
    path = Path(directory)
    settings = LedgerSettings.load(path)
    verifiers, retired = _verifiers(path, verifiers)
    findings: list[Finding] = []
    opened, latest = _read_checkpoints(path, verifiers, findings)
    pinned = None
    if trusted is not None:
        pinned = _open_file(trusted, "the trusted checkpoint", verifiers, findings)
        if pinned is None:
            pinned = _pinned_unsigned(trusted)
    origin = pinned.checkpoint.origin if pinned else settings.origin
    findings += _check_checkpoints(opened, latest, pinned, origin, retired)
    signed = [o.checkpoint for o in [*opened, *([latest] if latest else []),
                                      *([pinned] if pinned else [])]]
    hashed = _hash_records(path, progress, findings)
    leaves, tree = _LeafRun(hashed.levels[0]), hashed.tree()
    stored = FileNodeStore.read_level(path / TREE_DIR, 0)
    if stored == leaves.run:  # the common case: one tree serves both
        findings += SignedLeaves(leaves, _unique(signed), tree).check(leaves)
    else:
        findings += SignedLeaves(_LeafRun(stored), _unique(signed)).check(leaves, tree)
    return VerifyResult(len(leaves), _dedupe(findings))


def _pinned_unsigned(msg: bytes) -> _Opened:
    """The body of a pinned checkpoint whose signatures no trusted key verifies."""
    try:
        return _Opened(Checkpoint.parse(parse_note(msg).text), "trusted", frozenset())
    except NoteError as exc:
        raise LedgerError(f"the trusted checkpoint does not parse: {exc}") from None


def _unique(checkpoints: Iterable[Checkpoint]) -> list[Checkpoint]:
    return list(dict.fromkeys(checkpoints))


def _dedupe(findings: list[Finding]) -> list[Finding]:
    return list(dict.fromkeys(findings))
