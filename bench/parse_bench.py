"""Log lines parsed into events per second, beside a bare regex match of the same lines.

The input is a synthetic file of N lines (default 200,000) cycled from real samples: loghub's
OpenSSH_2k for sshd, the elastic nginx sample and CrowdSec's nginx test inputs for nginx. The
baseline matches one precompiled regex per line (the Combined Log Format, or an RFC 3164 header
plus an sshd `Failed|Invalid|Accepted` message) and builds nothing; apiwatch builds full
events with ids and timestamps. The best of the rounds is kept; read the ratios.

    python bench/parse_bench.py [--lines 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from functools import partial
from itertools import cycle, islice
from pathlib import Path

from apiwatch.formats.autodetect import parse_lines
from apiwatch.formats.parsed import ParseStats

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

COMBINED = re.compile(
    r'(\S+) \S+ (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+|-)(?: "([^"]*)" "([^"]*)")?'
)
SSHD = re.compile(
    r"(\w{3} +\d+ [\d:]+) (\S+) (\S+?)(?:\[(\d+)\])?: "
    r"(?:(Failed|Invalid|Accepted) .*? from (\S+))?"
)


def _sample(fmt: str) -> list[str]:
    if fmt == "sshd":
        files = [DATA / "logs/loghub/OpenSSH/OpenSSH_2k.log"]
    else:
        files = [DATA / "logs/elastic_integrations/nginx-test-access.log"]
        files += sorted((DATA / "crowdsec_hub/tests").glob("nginx-http-*/*.log"))
    lines = [x for f in files for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
    assert lines, f"no sample lines for {fmt}"
    return lines


def _apiwatch(fmt: str, lines: list[str]) -> int:
    stats = ParseStats()
    for _ in parse_lines(fmt, lines, stats=stats, year=2024):
        pass
    return stats.events + stats.unparsed


def _regex(pattern: re.Pattern[str], lines: list[str]) -> int:
    match = pattern.match
    return sum(1 for line in lines if match(line) is not None)


def _best(fn: Callable[[], int], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Print lines/s of apiwatch's parsers and of the regex baseline, with ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'format':7} {'contender':22} {'lines/s':>12} {'vs baseline':>12}")
    for fmt, baseline in (("sshd", SSHD), ("nginx", COMBINED)):
        lines = list(islice(cycle(_sample(fmt)), args.lines))
        base = _best(partial(_regex, baseline, lines), args.rounds)
        ours = _best(partial(_apiwatch, fmt, lines), args.rounds)
        events = _apiwatch(fmt, lines[:10_000])
        print(f"{fmt:7} {'re.match (baseline)':22} {len(lines) / base:12,.0f} {1.0:12.2f}")
        print(f"{fmt:7} {'apiwatch parse_lines':22} {len(lines) / ours:12,.0f} {base / ours:12.2f}")
        print(f"{'':7} {'(events+failures/10k)':22} {events:12,}")


if __name__ == "__main__":
    main()
