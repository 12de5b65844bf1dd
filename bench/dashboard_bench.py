"""Dashboard page render time with many stored events (issue 7: pages under 300 ms at 1M).

    python bench/dashboard_bench.py [EVENTS]

Fills a collector's index store with EVENTS (default 1,000,000) events spread over the last
50 minutes (so every page's default range covers all of them: the worst case), from 10,000
addresses and 5,000 users, about 37% failures (authz_fail and input_validation_fail are
failures too); then serves the collector's app (API and dashboard) with uvicorn on 127.0.0.1
and times each page over HTTP, logged in as an admin: the median of 5 requests after a first
one, whose time is shown too (`first`: aggregates the `minutes` rollup cannot answer read
the events once, then come from the minute cache; see docs/store.md). The baseline is the
same page over a store of 10,000 events, measured in the same run; the ratio says how render
time grows with the data.
"""

from __future__ import annotations

import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from apiwatch.collector.runtime import Collector
from apiwatch.config import Config
from apiwatch.events import Event, make_event
from apiwatch.server.app import create_app
from apiwatch.users import FILE_NAME, Accounts

BASELINE = 10_000
PASSWORD = "bench password 123"
PAGES = ("/", "/events", "/events?q=event.outcome:failure", "/alerts", "/sources",
         "/actor?kind=ip&value=198.51.7.7", "/actor?kind=user&value=user7", "BOARD")
ACTIONS = ("data_access", "data_access", "data_access", "authn_login_success",
           "authz_fail", "input_validation_fail")


def events(n: int, seed: int = 1) -> list[Event]:
    """`n` API events over the last 50 minutes."""
    rng = random.Random(seed)
    now = time.time_ns()
    span = 50 * 60 * 10**9
    out = []
    for i in range(n):
        action = "authn_login_fail" if rng.random() < 0.05 else rng.choice(ACTIONS)
        out.append(make_event(action, {
            "source.ip": f"198.51.{rng.randrange(40)}.{rng.randrange(1, 250)}",
            "user.name": f"user{rng.randrange(5000)}",
            "url.path": f"/api/v1/orders/{i}", "apiwatch.route": "/api/v1/orders/{id}",
            "http.request.method": "GET", "http.response.status_code": 200,
            "user_agent.original": "bench/1.0", "apiwatch.source": "app",
        }, timestamp_ns=now - span + span * i // n))
    return out


def fill(collector: Collector, n: int) -> None:
    """Insert `n` events straight into the index store (the ledger is not what is timed)."""
    batch = 20_000
    for first in range(0, n, batch):
        chunk = events(min(batch, n - first), seed=first)
        collector.store.insert(list(enumerate(chunk, start=first)))


def measure(n: int) -> dict[str, tuple[float, float]]:
    """(first, median) milliseconds per page over a store of `n` events."""
    with tempfile.TemporaryDirectory() as folder:
        config = Config(data_dir=Path(folder))
        config.ledger.durability = "none"
        # `fill` writes the store from this process; an indexer child would be a second writer.
        config.store.index_process = False
        collector = Collector.open(config, detect=True)
        accounts = Accounts(collector.config.data_dir / FILE_NAME)
        accounts.add("admin", "admin", PASSWORD)
        accounts.close()
        started = time.perf_counter()
        fill(collector, n)
        print(f"  stored {n:,} events in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
        app = create_app(collector.config, collector.pipeline, detection=collector.detection)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        try:
            return _time_pages(f"http://127.0.0.1:{sock.getsockname()[1]}")
        finally:
            server.should_exit = True
            thread.join(10)
            sock.close()
            collector.close()


def _csrf(html: str) -> str:
    return html.split('name="csrf" value="')[1].split('"', maxsplit=1)[0]


def _time_pages(url: str) -> dict[str, tuple[float, float]]:
    with httpx.Client(base_url=url, timeout=120) as http:
        login = http.get("/login")
        http.post("/login", data={"csrf": _csrf(login.text), "username": "admin",
                                  "password": PASSWORD})
        csrf = _csrf(http.get("/dashboards").text)
        board = http.post("/dashboards", data={"csrf": csrf, "name": "bench"}).headers[
            "location"]
        for kind, extra in (("timeseries", {}), ("top", {"field": "source.ip"}),
                            ("number", {}), ("table", {})):
            http.post(board, data={"csrf": csrf, "op": "add", "title": kind, "kind": kind,
                                   "query": "event.outcome:failure", "range": "1h", **extra})
        results = {}
        for page in PAGES:
            path = board if page == "BOARD" else page
            started = time.perf_counter()
            answer = http.get(path)
            first = (time.perf_counter() - started) * 1000
            assert answer.status_code == 200, (path, answer.status_code)
            times = []
            for _ in range(5):
                started = time.perf_counter()
                http.get(path)
                times.append((time.perf_counter() - started) * 1000)
            results[page] = (first, statistics.median(times))
        return results


def main() -> None:
    """Measure the baseline and the large store; print the table."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(f"baseline: {BASELINE:,} events", file=sys.stderr)
    base = measure(BASELINE)
    print(f"large: {n:,} events", file=sys.stderr)
    large = measure(n)
    big = f"{n // 1000}k"
    print(f"{'page':42} {'10k ms':>9} {big + ' ms':>10} {'ratio':>7} {'<300ms':>7} "
          f"{big + ' first':>10}")
    for page in PAGES:
        label = "/dashboards/<4 panels>" if page == "BOARD" else page
        (_, small), (first, median) = base[page], large[page]
        ok = "yes" if median < 300 else "NO"
        print(f"{label:42} {small:9.1f} {median:10.1f} {median / small:7.1f} {ok:>7} "
              f"{first:10.1f}")


if __name__ == "__main__":
    main()
