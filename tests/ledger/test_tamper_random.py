"""1,000 random single mutations of a 10,000-record ledger are each detected and located."""

from __future__ import annotations

import random

import pytest
from ledger_factory import log_file, make_ledger

from apiwatch.ledger.layout import checkpoint_files, claimed_checkpoint
from apiwatch.ledger.merkle import FileNodeStore, leaf_hashes
from apiwatch.ledger.verify import SignedLeaves, split_records

SIZE = 10_000
MUTATIONS = 1_000


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, SignedLeaves]:
    """The segment bytes of a ledger signed at 5,000 and 10,000, and its signed leaves."""
    path = make_ledger(tmp_path_factory.mktemp("random") / "ledger", SIZE, (5_000, SIZE))
    with FileNodeStore(path / "tree") as store:
        stored = [store.get(0, i) for i in range(store.count(0))]
    cps = [claimed_checkpoint(p.read_bytes()) for _, p in checkpoint_files(path)]
    return log_file(path).read_bytes(), SignedLeaves(stored, [cp for cp in cps if cp])


def _mutate(data: bytes, rng: random.Random) -> tuple[str, bytes, set[int]]:
    """One random mutation of the segment bytes and the record indexes it should be found at."""
    lines = data.split(b"\n")[:-1]
    kind = rng.choice(["flip", "delete", "insert", "swap"])
    if kind == "flip":
        at = rng.randrange(len(data))
        flipped = bytes([data[at] ^ rng.randrange(1, 256)])
        return kind, data[:at] + flipped + data[at + 1 :], {data.count(b"\n", 0, at)}
    i = rng.randrange(len(lines))
    if kind == "delete":
        del lines[i]
        expect = {i}
    elif kind == "insert":  # not after the last record: that is just an unsigned new record
        lines.insert(i, b'{"inserted":%d}' % rng.randrange(1 << 30))
        expect = {i}
    else:
        j = rng.choice([k for k in (i - 1, i + 1, rng.randrange(len(lines))) if 0 <= k != i
                        and k < len(lines)])
        lines[i], lines[j] = lines[j], lines[i]
        expect = {i, j}
    return kind, b"\n".join(lines) + b"\n", expect


def test_every_random_mutation_is_detected_and_located(
    signed: tuple[bytes, SignedLeaves],
) -> None:
    """Byte flips, deletions, insertions and swaps are each flagged at the record touched."""
    data, reference = signed
    assert reference.trusted
    assert reference.check(leaf_hashes(split_records(data)[0])) == []
    rng = random.Random(6962)
    for n in range(MUTATIONS):
        kind, mutated, expect = _mutate(data, rng)
        records, _ = split_records(mutated)
        found = [f for f in reference.check(leaf_hashes(records)) if f.tampering]
        assert found, f"mutation {n} ({kind} at {expect}) went undetected"
        assert expect & {f.index for f in found}, f"mutation {n} ({kind} at {expect}): {found}"
