"""Instructions per event of the index store's write path, as the indexer process runs it.

The collector's indexer (`apiwatch.collector.indexer`) receives ledger records and hands each
batch to `SqliteStore.insert_records`, then commits. This bench
feeds the same records through the same calls in process, under callgrind (valgrind), so the
figure does not depend on the machine's other load. Each traffic is fed twice, `--events` and
3 x `--events` records, and the difference of the two counts is divided by the extra events:
start-up, imports and the record file cancel out.

Traffic, 500 events a batch, a commit after each (the indexer commits each group of batches):
  new    every event from a new IPv4 address (`bench/ingest_bench.py`'s HTTP events)
  cycle  the same events over 5,000 addresses
  known  `bench/collector_ingest.py`'s failed logins (5,000 addresses, 1,000 users)

    python bench/index_instructions.py [--events 10000] [--traffic new,cycle,known]

To compare with another checkout: `PYTHONPATH=/other/checkout/src python bench/...`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from apiwatch.collector.gc_policy import collector_gc
from apiwatch.events import make_event
from apiwatch.events.model import Event
from apiwatch.formats.ecs import encode_ecs
from apiwatch.store.sqlite import SqliteStore

BATCH = 500
CLIENTS = 4  # as in the HTTP benches: event i is source i % 4's
STAMPS = {"apiwatch.source": "bench0", "event.ingested": "2026-11-27T10:00:00.000000Z"}


def fields(traffic: str, i: int) -> Event:
    """The fields of event `i` of a traffic (see the module docstring)."""
    seq = i // CLIENTS + 1
    if traffic == "known":
        client = i % CLIENTS
        return {
            "user.name": f"user{(seq * 7 + client) % 1000}",
            "source.ip": f"198.51.{(seq + client) % 20}.{(seq * 13) % 250}",
            "url.path": "/login", "http.request.method": "POST",
            "http.response.status_code": 401, "apiwatch.seq": seq,
        }
    address = i % 5000 if traffic == "cycle" else i
    return {
        "source.ip": f"10.{address >> 16 & 255}.{address >> 8 & 255}.{address & 255}",
        "user.name": f"user{i % 1000}", "url.path": "/login", "apiwatch.seq": seq,
    }


def records(traffic: str, count: int) -> list[bytes]:
    """Ledger records as the indexer receives them: the event, then the collector's stamps."""
    return [
        encode_ecs({**make_event("authn_login_fail", fields(traffic, i)), **STAMPS}).rstrip()
        for i in range(count)
    ]


def feed(path: Path, count: int) -> None:
    """The measured child: index the first `count` records of `path` as the indexer does."""
    lines = path.read_bytes().split(b"\n")[:count]
    with tempfile.TemporaryDirectory() as tmp, collector_gc():
        store = SqliteStore(Path(tmp) / "index.sqlite3")
        for first in range(0, count, BATCH):
            store.insert_records(first, lines[first:first + BATCH])
            store.max_ledger_index()  # commits, as the indexer does before it answers
        store.close()


def instructions(path: Path, count: int, workdir: Path, script: str = __file__) -> int:
    """Instructions callgrind counts for `script --child path count` (by default this bench's
    `feed(path, count)`) in a fresh interpreter."""
    out = workdir / f"callgrind.{count}"
    # A fixed hash seed: dict and set layouts (and their costs) are the same run after run.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         script, "--child", str(path), str(count)],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    summary = re.search(rb"^summary: (\d+)", out.read_bytes(), re.MULTILINE)
    if summary is None:
        raise SystemExit(f"no summary line in {out}")
    return int(summary.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--traffic", default="new,cycle,known")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        feed(Path(args.child[0]), int(args.child[1]))
        return
    small, large = args.events, 3 * args.events
    print(f"instructions per event of the indexer's write path (callgrind, {large:,} - "
          f"{small:,} events)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for traffic in args.traffic.split(","):
            path = workdir / f"{traffic}.ndjson"
            path.write_bytes(b"\n".join(records(traffic, large)))
            counts = [instructions(path, count, workdir) for count in (small, large)]
            print(f"  {traffic:6} {(counts[1] - counts[0]) / (large - small):>10,.0f}")


if __name__ == "__main__":
    main()
