"""Events per second through the detection engine with the whole catalogue.

    python bench/detect_bench.py [EVENTS]

Generates API traffic (requests, reads, logins with 3% failures, 403s, 404s, 5xx, and a few
attackers), encodes it as ECS JSON lines, then measures in the same run:

- baseline: decoding the JSON lines (`orjson.loads`) and iterating the events, the least
  any consumer of the stream does;
- engine: `Engine.process` over the decoded events with every catalogue rule;
- engine, batched: `Engine.process_batch` over batches of 1000 (as the collector's pipeline
  hands its listeners a batch).

The goal: the catalogue costs at most 30% of ingest throughput, i.e. at ~50k events/s of
ingest the engine alone must do >= ~170k events/s.
"""

from __future__ import annotations

import random
import sys
import time

import orjson

from apiwatch.detect import Engine, load_catalogue
from apiwatch.events import Event, make_event

START = 1_767_225_600.0
INGEST_RATE = 50_000.0  # events/s of the collector's ingest path (issue 6)
BATCH = 1000


def traffic(n: int, seed: int = 1) -> list[Event]:
    """`n` events of a busy API over about an hour, with some attackers mixed in."""
    rng = random.Random(seed)
    users = [(f"user{i}", f"key-{i:05d}", f"198.51.{rng.randrange(100)}.{rng.randrange(1, 255)}")
             for i in range(5000)]
    routes = ("/api/v1/orders/{id}", "/api/v1/invoices/{id}", "/api/v1/profile")
    out = []
    ts = START
    for _ in range(n):
        ts += 3600 / n
        user, key, ip = rng.choice(users)
        if rng.random() < 0.01:  # attackers: probing and guessing from a few addresses
            ip = f"203.0.113.{rng.randrange(1, 20)}"
        base = {"source.ip": ip, "user.name": user, "apiwatch.api_key.id": key,
                "apiwatch.source": "api-1", "service.name": "shop"}
        roll = rng.random()
        if roll < 0.05:
            action = "authn_login_fail" if rng.random() < 0.03 else "authn_login_success"
            out.append(make_event(action, base, timestamp_ns=round(ts * 1e9)))
        elif roll < 0.15:
            out.append(make_event("data_access", {**base, "apiwatch.object.count":
                                                  rng.randrange(1, 50)},
                                  timestamp_ns=round(ts * 1e9)))
        else:
            route = rng.choice(routes)
            path = route.replace("{id}", str(rng.randrange(100_000)))
            status = rng.choices((200, 201, 404, 403, 400, 500), (90, 4, 3, 1, 1.5, 0.5))[0]
            query = "q=1' OR 1=1--" if status == 400 and rng.random() < 0.1 else "page=2"
            out.append(make_event(
                "authz_fail" if status == 403 else "http_request",
                {**base, "http.request.method": "GET", "url.path": path,
                 "url.original": f"{path}?{query}", "url.query": query,
                 "apiwatch.route": route, "http.response.status_code": status},
                outcome="failure" if status >= 400 else "success",
                timestamp_ns=round(ts * 1e9)))
    return out


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def main() -> None:
    """Print events/s for the baseline and the engine, and the catalogue's share of ingest."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    events = traffic(n)
    lines = [orjson.dumps(e) for e in events]
    rules = load_catalogue()

    t0 = time.perf_counter()
    decoded = [orjson.loads(line) for line in lines]
    for event in decoded:
        event.get("event.action")
    baseline = time.perf_counter() - t0

    engine = Engine(rules)
    t0 = time.perf_counter()
    alerts = 0
    for event in decoded:
        alerts += len(engine.process(event))
    engine_time = time.perf_counter() - t0

    batched = Engine(rules)
    t0 = time.perf_counter()
    batch_alerts = 0
    for start in range(0, n, BATCH):
        batch_alerts += len(batched.process_batch(decoded[start:start + BATCH]))
    batch_time = time.perf_counter() - t0
    if batch_alerts != alerts:
        raise SystemExit(f"process_batch raised {batch_alerts} alerts, process {alerts}")

    base_rate, engine_rate = _rate(n, baseline), _rate(n, engine_time)
    batch_rate = _rate(n, batch_time)
    share = INGEST_RATE / engine_rate  # engine seconds per ingest second at 50k events/s
    print(f"detect_bench: {n} events, {len(rules)} rules, {alerts} alerts, "
          f"{engine.stats.late} late")
    print(f"{'measure':<40}{'events/s':>14}{'ratio':>10}")
    print(f"{'baseline: decode JSON + iterate':<40}{base_rate:>14,.0f}{1.0:>10.2f}")
    print(f"{'engine: whole catalogue':<40}{engine_rate:>14,.0f}"
          f"{engine_rate / base_rate:>10.2f}")
    print(f"{'engine, batched: process_batch':<40}{batch_rate:>14,.0f}"
          f"{batch_rate / base_rate:>10.2f}")
    print(f"engine: {1e6 / engine_rate:.1f} us/event; goal <= {0.3e6 / INGEST_RATE:.1f}")
    print(f"catalogue cost at {INGEST_RATE:,.0f} events/s ingest: {share:.0%} "
          f"(goal <= 30%, i.e. engine >= {INGEST_RATE / 0.3:,.0f} events/s)")


if __name__ == "__main__":
    main()
