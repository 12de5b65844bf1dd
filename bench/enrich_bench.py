"""Per-event cost of network enrichment (ASN + country) against the sanitizer alone.

    python bench/enrich_bench.py [EVENTS]

The collector calls the enricher then the sanitizer on every received event; this measures,
in the same run, over the same events:

- baseline: `Sanitizer` alone (what the pipeline does per event without `[enrich]`);
- enriched, warm: `NetworkEnricher` then `Sanitizer`, 2,000 client addresses drawn with a
  skew (as an API sees the same clients again and again): mostly cache hits;
- enriched, cold: every event from a new address (no cache hit: the worst case).

It reads MaxMind's small test databases (tests/enrich/data); a full GeoLite2 database has a
deeper search tree, so a cache miss costs somewhat more there.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

from apiwatch.enrich import open_enricher
from apiwatch.events import Event, make_event
from apiwatch.sanitize import Sanitizer

DATA = Path(__file__).resolve().parents[1] / "tests" / "enrich" / "data"
# Public networks present in the test databases (AS1221, AS7018, GB, SE, US...).
NETWORKS = ("1.{}.{}.{}", "12.81.{}.{}", "2.125.{}.{}", "81.2.{}.{}", "89.160.{}.{}",
            "216.160.{}.{}")


def _address(rng: random.Random) -> str:
    pattern = rng.choice(NETWORKS)
    parts = [rng.randrange(128, 160) if i == 0 and pattern.startswith("1.{") else
             rng.randrange(256) for i in range(pattern.count("{}"))]
    return pattern.format(*parts)


def events(n: int, distinct: int | None, seed: int = 1) -> list[Event]:
    """`n` request events; from `distinct` addresses (skewed), or each from a new one."""
    rng = random.Random(seed)
    pool = [_address(rng) for _ in range(distinct or 0)]
    out = []
    for i in range(n):
        ip = pool[min(int(rng.paretovariate(1.2)) - 1, len(pool) - 1)] if pool else \
            f"1.{128 + (i >> 16) % 32}.{(i >> 8) & 255}.{i & 255}"
        out.append(make_event("http_request", {
            "source.ip": ip, "url.path": "/api/v1/orders/17", "http.request.method": "GET",
            "http.response.status_code": 200, "apiwatch.api_key.id": "ak_3f9a1c00d2e4b6a8",
            "user_agent.original": "python-httpx/0.27"}))
    return out


def measure(step: Callable[[Event], Event], batch: list[Event]) -> float:
    """Microseconds per event of `step` over fresh copies of `batch`."""
    copies = [dict(e) for e in batch]
    start = time.perf_counter()
    for event in copies:
        step(event)
    return (time.perf_counter() - start) / len(copies) * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    sanitize = Sanitizer()
    warm, cold = events(n, 2000), events(n, None)
    enrich = open_enricher(str(DATA / "GeoLite2-ASN-Test.mmdb"),
                           str(DATA / "GeoIP2-Country-Test.mmdb"))
    assert enrich is not None

    def enriched(event: Event) -> Event:
        return sanitize(enrich(event))

    results: dict[str, list[float]] = {"baseline": [], "warm": [], "cold": []}
    for _ in range(3):  # interleaved rounds: noise on a shared machine hits all three alike
        results["baseline"].append(measure(sanitize, warm))
        enrich.fields.cache_clear()  # type: ignore[attr-defined]
        results["warm"].append(measure(enriched, warm))
        enrich.fields.cache_clear()  # type: ignore[attr-defined]
        results["cold"].append(measure(enriched, cold))
    base = min(results["baseline"])
    print(f"{n} events, best of 3 rounds")
    for name, label in (("baseline", "sanitize alone"), ("warm", "enrich + sanitize, 2k IPs"),
                        ("cold", "enrich + sanitize, all new IPs")):
        best = min(results[name])
        print(f"{label:32} {best:6.2f} us/event  {best / base:5.2f}x  "
              f"(+{best - base:5.2f} us)")


if __name__ == "__main__":
    main()
