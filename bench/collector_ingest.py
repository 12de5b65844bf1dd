"""Events per second into the collector over HTTP, against the pipeline called in-process.

One client posts signed NDJSON batches to a real `apiwatch serve` (a subprocess, SQLite store,
durable ledger unless --durability none); the baseline decodes the same lines and calls
`Pipeline.ingest` directly on a fresh data directory, so the ratio is the cost of HTTP, auth
and the server's own checks on top of the storage path.

    python bench/collector_ingest.py [--events 50000] [--batch 500] [--durability durable]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from apiwatch.collector.runtime import Collector
from apiwatch.config import load_config
from apiwatch.events import make_event
from apiwatch.formats.ecs import encode_ecs
from apiwatch.formats.jsonl import decode_line
from apiwatch.signing import sign_batch

TOKEN = "bench-token-0123456789abcdef"


def batches(total: int, size: int) -> list[bytes]:
    out = []
    for first in range(1, total + 1, size):
        out.append(b"".join(
            encode_ecs(make_event("authn_login_fail", {
                "user.name": f"user{seq % 97}", "source.ip": "198.51.100.23",
                "url.path": "/login", "http.request.method": "POST",
                "http.response.status_code": 401, "apiwatch.seq": seq,
            }))
            for seq in range(first, min(first + size, total + 1))
        ))
    return out


def write_config(folder: Path, port: int, durability: str) -> Path:
    path = folder / "apiwatch.toml"
    path.write_text(
        f'data_dir = "data"\n[server]\nlisten = "127.0.0.1:{port}"\n'
        f'[ledger]\ndurability = "{durability}"\n'
        f'[sanitize]\nfingerprint_key = "{"ab" * 32}"\n[sources.bench]\ntoken = "{TOKEN}"\n'
    )
    return path


def over_http(bodies: list[bytes], durability: str) -> float:
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        config = write_config(Path(tmp), port, durability)
        env = {k: v for k, v in os.environ.items() if not k.startswith("APIWATCH_")}
        proc = subprocess.Popen(
            [sys.executable, "-c", "from apiwatch.cli import main; main()", "serve",
             "--config", str(config)], env=env, stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            while True:
                if proc.poll() is not None:
                    raise SystemExit("apiwatch serve exited before it was ready")
                try:
                    httpx.get(url + "/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            with httpx.Client(base_url=url, timeout=60) as http:
                start = time.perf_counter()
                for body in bodies:
                    answer = http.post("/v1/events", content=body, headers=sign_batch(TOKEN, body))
                    answer.raise_for_status()
                return time.perf_counter() - start
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


def in_process(bodies: list[bytes], durability: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(write_config(Path(tmp), 0, durability), env={})
        collector = Collector.open(config)
        try:
            start = time.perf_counter()
            for body in bodies:
                lines = [line for line in body.split(b"\n") if line]
                events = [decode_line(line, n) for n, line in enumerate(lines, start=1)]
                collector.pipeline.ingest("bench", events)
            return time.perf_counter() - start
        finally:
            collector.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--durability", choices=["durable", "none"], default="durable")
    args = parser.parse_args()
    bodies = batches(args.events, args.batch)
    base = in_process(bodies, args.durability)
    http = over_http(bodies, args.durability)
    print(f"{args.events} events, batches of {args.batch}, durability {args.durability}")
    print(f"{'path':<28}{'seconds':>10}{'events/s':>12}{'ratio':>8}")
    for name, seconds in (("Pipeline.ingest in-process", base), ("POST /v1/events (HTTP)", http)):
        print(f"{name:<28}{seconds:>10.2f}{args.events / seconds:>12,.0f}{base / seconds:>8.2f}")


if __name__ == "__main__":
    main()
