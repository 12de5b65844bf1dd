"""Instructions per event of the collector's main process path, as `POST /v1/events` runs it.

The HTTP endpoint decodes a batch's lines (`formats.jsonl.decode_lines`) and hands them to the
pipeline, which checks them, stamps them, sorts out duplicates and appends them to the ledger
(`Pipeline._stage`). This bench feeds `bench/collector_ingest.py`'s batches (500 failed logins
from 4 sources) through the same calls in process under callgrind, as `index_instructions.py`
does for the indexer process: `--events` and 3 x `--events`, the difference divided by the extra
events. Not counted: HTTP, the signature check, fsync and the hand-over to the indexer.

Under valgrind OpenSSL's SHA-256 takes its portable code (no SHA extensions), about 20k of the
figure per event (the leaf hashes); on the machine they cost about 0.7 us per event.

    python bench/pipeline_instructions.py [--events 4000]

To compare with another checkout: `PYTHONPATH=/other/checkout/src python bench/...`.
"""

from __future__ import annotations

import argparse
import marshal
import tempfile
from pathlib import Path
from typing import cast

from apiwatch.collector.gc_policy import collector_gc
from apiwatch.collector.runtime import Collector
from apiwatch.config import load_config
from apiwatch.events import Event
from apiwatch.formats.jsonl import decode_lines
from apiwatch.heap import keep_freed_memory
from collector_ingest import FINGERPRINT_KEY, batches
from index_instructions import instructions

CLIENTS = 4


def feed(path: Path, count: int) -> None:
    """The measured child: the batches in `path`, decoded and staged as the endpoint does."""
    work: list[tuple[str, list[bytes]]] = marshal.loads(path.read_bytes())
    keep_freed_memory()  # as `apiwatch serve` does
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "apiwatch.toml"
        config.write_text(
            f'data_dir = "{tmp}/data"\n[ledger]\ndurability = "none"\n'
            f'[store]\nindex_process = false\n[alerts]\ncatalogue = false\n'
            f'[sanitize]\nfingerprint_key = "{FINGERPRINT_KEY}"\n'
        )
        collector = Collector.open(load_config(config, env={}), detect=False)
        pipeline = collector.pipeline
        with collector_gc():
            for source, lines in work[: count // 500]:
                events = cast(list[Event], decode_lines(lines))  # every line decodes
                with pipeline._lock:
                    pipeline._stage(source, events, None, lines)
        collector.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        feed(Path(args.child[0]), int(args.child[1]))
        return
    small, large = args.events, 3 * args.events
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        path = workdir / "batches.marshal"
        bodies = batches(large, 500, CLIENTS)
        path.write_bytes(marshal.dumps([
            (f"bench{client}", [line for line in body.split(b"\n") if line])
            for client, client_bodies in enumerate(bodies) for body in client_bodies
        ]))
        counts = [instructions(path, n, workdir, __file__) for n in (small, large)]
    print(f"instructions per event of the collector's main path (callgrind, {large:,} - "
          f"{small:,} events): {(counts[1] - counts[0]) / (large - small):,.0f}")


if __name__ == "__main__":
    main()
