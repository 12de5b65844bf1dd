"""Actor timelines over 10 million stored events (issue 4: under 100 ms).

Fills a SQLite index store with `--events` events (default 10,000,000; generated batch by
batch, so memory stays flat; 100k IPs, 20k users, 5k API keys over ten days, as in
store_bench.py), then asks for the newest 100 events of random actors of each kind, with and
without a 48 h range. Baseline in the same run: a primary-key lookup of 100 random rows, the
least any timeline must do to return 100 events.

    python bench/timeline_10m.py [--events 10000000] [--queries 200] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from apiwatch.events import format_timestamp
from apiwatch.store._time import from_micros
from apiwatch.store.sqlite import SqliteStore
from store_bench import BATCH, START_S, generate

_CHUNK = 100_000  # events generated at once (store_bench's generator, re-seeded per chunk)


def fill(store: SqliteStore, total: int) -> float:
    started = time.perf_counter()
    step = 10 * 86_400 * 10**9 // total  # ten days in all
    for base in range(0, total, _CHUNK):
        rows = []
        for offset, (_, event) in enumerate(generate(min(_CHUNK, total - base))):
            event["@timestamp"] = format_timestamp(START_S * 10**9 + (base + offset) * step)
            rows.append((base + offset, event))
        for first in range(0, len(rows), BATCH):
            store.insert(rows[first:first + BATCH])
        print(f"\r{base + len(rows):>12,} events stored", end="", flush=True)
    store.max_ledger_index()  # commits
    print()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="store here (reused if it exists)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = (args.keep or Path(tmp)) / "index.sqlite3"
        fresh = not path.exists()
        store = SqliteStore(path)
        if fresh:
            seconds = fill(store, args.events)
            print(f"insert: {args.events / seconds:,.0f} events/s")
        rng = random.Random(11)
        sample = generate(2000)
        actors = {
            "ip": [e["source.ip"] for _, e in sample],
            "user": [e["user.name"] for _, e in sample],
            "key": [e["apiwatch.api_key.id"] for _, e in sample],
        }
        last = from_micros((START_S + 10 * 86_400) * 1_000_000)
        since = last - timedelta(hours=48)
        top = store.max_ledger_index() or 0
        baseline = []
        db = store._db
        for _ in range(args.queries):
            ids = [rng.randrange(top) for _ in range(100)]
            started = time.perf_counter()
            marks = ",".join("?" * len(ids))
            db.execute(f"SELECT idx, doc FROM events WHERE idx IN ({marks})", ids).fetchall()
            baseline.append(time.perf_counter() - started)
        base = statistics.median(baseline)
        print(f"{top + 1:,} events; newest 100 events of an actor, {args.queries} actors each")
        print(f"{'query':<28}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'vs 100 row reads':>18}")
        print(f"{'100 random rows (baseline)':<28}{base * 1e3:>9.2f}")
        for kind, values in actors.items():
            for label, bound in (("all time", None), ("48h", since)):
                times = []
                for _ in range(args.queries):
                    value = rng.choice(values)
                    started = time.perf_counter()
                    store.timeline(kind, value, since=bound, limit=100)  # type: ignore[arg-type]
                    times.append(time.perf_counter() - started)
                times.sort()
                p50, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
                name = f"timeline {kind}, {label}"
                print(f"{name:<28}{p50 * 1e3:>9.2f}{p99 * 1e3:>9.2f}{times[-1] * 1e3:>9.2f}"
                      f"{p50 / base:>17.1f}x")
        store.close()


if __name__ == "__main__":
    main()
