"""Ledger throughput: append (fsync per batch) and verify, against raw SHA-256 in the same run.

Run as ``python bench/ledger_bench.py [--records N]``. Records are ~300-byte JSON lines; appends
go in batches of 1,000 with the durable policy (one fsync of the segment per batch). Ratios
compare with one raw ``hashlib.sha256`` call per record over the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from apiwatch.ledger.log import Ledger
from apiwatch.ledger.merkle import MemoryNodeStore, MerkleTree, leaf_hashes
from apiwatch.ledger.verify import verify_ledger

BATCH = 1_000


def _records(n: int) -> list[bytes]:
    pad = b"x" * 200
    return [
        b'{"@timestamp":"2025-01-01T00:00:%02d.%06dZ","event":{"action":"authn_login_fail",'
        b'"sequence":%d},"source":{"ip":"203.0.113.%d"},"pad":"%s"}' % (i % 60, i, i, i % 256, pad)
        for i in range(n)
    ]


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    n = parser.parse_args().records
    records = _records(n)
    size = sum(map(len, records))
    sha = hashlib.sha256

    start = time.perf_counter()
    for r in records:
        sha(r).digest()
    raw = _rate(n, time.perf_counter() - start)

    start = time.perf_counter()
    leaves = leaf_hashes(records)
    leaf_rate = _rate(n, time.perf_counter() - start)
    start = time.perf_counter()
    MerkleTree(MemoryNodeStore()).extend(leaves)
    tree_rate = _rate(n, time.perf_counter() - start)

    workdir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    try:
        path = workdir / "ledger"
        with Ledger.create(path, "bench.example/log", "bench.example/log") as ledger:
            start = time.perf_counter()
            for at in range(0, n, BATCH):
                ledger.append_batch(records[at : at + BATCH])
            append = _rate(n, time.perf_counter() - start)
            ledger.checkpoint()
        start = time.perf_counter()
        result = verify_ledger(path)
        verify = _rate(n, time.perf_counter() - start)
        assert result.ok, result.findings
        assert result.size == n
    finally:
        shutil.rmtree(workdir)

    print(f"{n:,} records of {size / n:.0f} bytes on average\n")
    print(f"{'measure':<40} {'records/s':>12} {'vs raw sha256':>14}")
    rows = [
        ("raw hashlib.sha256, one call per record", raw),
        ("RFC 6962 leaf hashes", leaf_rate),
        ("Merkle tree build (in memory, leaves/s)", tree_rate),
        (f"Ledger.append_batch ({BATCH:,}, fsync each)", append),
        ("verify_ledger (read, rehash, roots)", verify),
    ]
    for name, rate in rows:
        print(f"{name:<40} {rate:>12,.0f} {rate / raw:>13.0%}")


if __name__ == "__main__":
    main()
