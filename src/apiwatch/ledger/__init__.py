"""The ledger: apiwatch's tamper-evident record of truth.

Records are leaves of an RFC 6962 Merkle tree (`merkle`, proofs checked by `proofs`); the tree's
state is published as a C2SP tlog-checkpoint (`checkpoint`) inside a C2SP signed note (`note`)
signed with Ed25519 keys from a `keys.Keyring`, so that existing verifiers (Go `sumdb/note`,
transparency-dev tools) accept it. Evidence `bundle`s carry chosen records with their proofs
and a signed checkpoint, verifiable with the vkey alone.
"""

from apiwatch.ledger.bundle import BundleReport, verify_bundle, write_bundle
from apiwatch.ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from apiwatch.ledger.errors import KeyringError, LedgerError, NoteError, ProofError
from apiwatch.ledger.findings import KINDS, WARNINGS, Finding, VerifyResult
from apiwatch.ledger.keys import KeyEntry, Keyring
from apiwatch.ledger.layout import LedgerSettings
from apiwatch.ledger.log import Ledger
from apiwatch.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    FileNodeStore,
    MemoryNodeStore,
    MerkleTree,
    NodeStore,
    leaf_hash,
    node_hash,
    root_of,
)
from apiwatch.ledger.note import (
    Note,
    NoteSignature,
    Signer,
    Verifier,
    add_signatures,
    generate_key,
    open_note,
    parse_note,
    sign_note,
)
from apiwatch.ledger.proofs import verify_consistency, verify_inclusion
from apiwatch.ledger.recovery import RecoveryReport
from apiwatch.ledger.segments import RecordError, SegmentStore
from apiwatch.ledger.verify import SignedLeaves, verify_ledger

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "KINDS",
    "WARNINGS",
    "BundleReport",
    "Checkpoint",
    "FileNodeStore",
    "Finding",
    "KeyEntry",
    "Keyring",
    "KeyringError",
    "Ledger",
    "LedgerError",
    "LedgerSettings",
    "MemoryNodeStore",
    "MerkleTree",
    "NodeStore",
    "Note",
    "NoteError",
    "NoteSignature",
    "ProofError",
    "RecordError",
    "RecoveryReport",
    "SegmentStore",
    "SignedLeaves",
    "Signer",
    "Verifier",
    "VerifyResult",
    "add_signatures",
    "generate_key",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "parse_note",
    "root_of",
    "sign_checkpoint",
    "sign_note",
    "verify_bundle",
    "verify_consistency",
    "verify_inclusion",
    "verify_ledger",
    "write_bundle",
]
