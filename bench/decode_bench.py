"""Decoding a batch line by line (`decode_line`) against all at once (`decode_lines`).

The batches are bench/collector_ingest.py's `batches()`, as the collector's ingest decodes them:
500 NDJSON lines of failed logins, then of the busy API of detect_bench.py (`mixed`: three
shapes of line).
Both ways decode the same batches in the same run, alternating, and must agree; `orjson.loads`
of every line is the floor either way. Best of the rounds, in microseconds per event.

    python bench/decode_bench.py [--events 20000] [--batch 500] [--rounds 7]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

import orjson

from apiwatch.errors import DecodeError
from apiwatch.formats.jsonl import decode_line, decode_lines
from collector_ingest import batches

Batches = list[list[bytes]]


# Each way keeps the batch's events until it is done, as the ingest does: the garbage collector
# then has the same live objects to look at.


def one_by_one(lines: list[bytes]) -> object:
    events: list[object] = []
    for number, line in enumerate(lines, 1):
        try:
            events.append(decode_line(line, number))
        except DecodeError as exc:
            events.append(exc)
    return events


def at_once(lines: list[bytes]) -> object:
    return decode_lines(lines)


def loads_only(lines: list[bytes]) -> object:
    return list(map(orjson.loads, lines))


WAYS: dict[str, Callable[[list[bytes]], object]] = {
    "orjson.loads only": loads_only, "decode_line": one_by_one, "decode_lines": at_once,
}


def best_us(way: Callable[[list[bytes]], object], bodies: Batches, events: int,
            best: float) -> float:
    gc.collect()  # each pass from a clean heap; the collector still runs during it
    start = time.perf_counter()
    for lines in bodies:
        way(lines)
    return min(best, (time.perf_counter() - start) / events * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"{args.events} events, batches of {args.batch}, best of {args.rounds} rounds, "
          "us per event")
    print(f"{'traffic':<16}" + "".join(f"{name:>20}" for name in WAYS) + f"{'lines/line':>12}")
    for mixed in (False, True):
        bodies = [[line for line in body.split(b"\n") if line]
                  for client in batches(args.events, args.batch, 4, mixed) for body in client]
        events = sum(map(len, bodies))
        for lines in bodies:  # complete lines: no make_event, so the events compare equal
            if decode_lines(lines) != [decode_line(line, n) for n, line in enumerate(lines, 1)]:
                raise SystemExit("decode_lines and decode_line disagree")
        best = dict.fromkeys(WAYS, float("inf"))
        for _ in range(args.rounds):
            for name, way in WAYS.items():
                best[name] = best_us(way, bodies, events, best[name])
        print(f"{'mixed' if mixed else 'failed logins':<16}"
              + "".join(f"{best[name]:>20.2f}" for name in WAYS)
              + f"{best['decode_lines'] / best['decode_line']:>12.2f}")


if __name__ == "__main__":
    main()
