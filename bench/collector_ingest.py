"""Events per second into the collector over HTTP, against the pipeline called in-process.

Clients (one source each, `--clients`, 4 by default: a fleet sends at once) post signed NDJSON
batches to a real `apiwatch serve` (a subprocess, SQLite store written by its indexer process,
durable ledger unless --durability none); the baseline decodes the same lines and calls
`Pipeline.ingest` directly, one batch after the other, with the index written inline on a
fresh data directory. The ratio is what HTTP, auth, the server's checks and the second core
(the indexer process) change on top of the storage path. The load generator is
`http_load.py` (batches signed before the clock starts). The CPU time each of serve's processes
spent per event is printed too: on two cores, the process nearest a whole core is the limit.

Traffic: failed logins from 5,000 addresses against 1,000 user names, or with `--mixed` the busy
API of detect_bench.py. The catalogue is off (issue 4 measures ingest "all the way to ledger +
index"); `--detect` turns it on for both paths.

    python bench/collector_ingest.py [--events 100000] [--batch 500] [--clients 4]
        [--durability durable] [--detect] [--mixed] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
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
from apiwatch.sanitize import SanitizeConfig, Sanitizer
from detect_bench import traffic
from http_load import post_all, sign_all

FINGERPRINT_KEY = "ab" * 32


def token(client: int) -> str:
    return f"bench-token-{client:04d}-0123456789abcdef"


def batches(total: int, size: int, clients: int, mixed: bool = False) -> list[list[bytes]]:
    """Each client's batch bodies; its events carry its own sequence numbers. `mixed`: the
    busy API of bench/detect_bench.py (5,000 users and keys, ~1% attackers) instead of failed
    logins only."""
    out: list[list[bytes]] = [[] for _ in range(clients)]
    per_client = total // clients
    # Sanitized as the capture middleware sends them (API keys as keyed fingerprints).
    source_side = Sanitizer(SanitizeConfig.from_mapping({"fingerprint_key": FINGERPRINT_KEY}))
    # Without `apiwatch.source`: the collector stamps it from the token, as for real sources.
    api = [
        {k: v for k, v in source_side(event).items() if k != "apiwatch.source"}
        for event in traffic(per_client * clients)
    ] if mixed else []
    for client in range(clients):
        for first in range(1, per_client + 1, size):
            out[client].append(b"".join(
                encode_ecs({**api[(seq - 1) * clients + client], "apiwatch.seq": seq}
                           if mixed else make_event("authn_login_fail", {
                    "user.name": f"user{(seq * 7 + client) % 1000}",
                    "source.ip": f"198.51.{(seq + client) % 20}.{(seq * 13) % 250}",
                    "url.path": "/login", "http.request.method": "POST",
                    "http.response.status_code": 401, "apiwatch.seq": seq,
                }))
                for seq in range(first, min(first + size, per_client + 1))
            ))
    return out


def write_config(folder: Path, port: int, args: argparse.Namespace, inline: bool) -> Path:
    path = folder / "apiwatch.toml"
    sources = "".join(
        f'[sources.bench{c}]\ntoken = "{token(c)}"\n' for c in range(args.clients)
    )
    path.write_text(
        f'data_dir = "data"\n[server]\nlisten = "127.0.0.1:{port}"\n'
        f'[ledger]\ndurability = "{args.durability}"\n'
        f'[store]\nindex_process = {"false" if inline else "true"}\n'
        f'[alerts]\ncatalogue = {"true" if args.detect else "false"}\n'
        f'[sanitize]\nfingerprint_key = "{FINGERPRINT_KEY}"\n{sources}'
    )
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def over_http(
    bodies: list[list[bytes]], args: argparse.Namespace, cpu: dict[str, float]
) -> float:
    """Seconds to post every batch; `cpu` gets the CPU seconds of serve's processes."""
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        config = write_config(Path(tmp), port, args, inline=False)
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

            signed = sign_all(bodies, token)
            children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                      text=True, check=False).stdout.split()
            pids = {"serve (main process)": proc.pid,
                    **{f"indexer (pid {child})": int(child) for child in children}}
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            seconds = post_all(port, signed)
            cpu.update({name: cpu_seconds(pid) - before[name] for name, pid in pids.items()})
            return seconds
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


def in_process(bodies: list[list[bytes]], args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(write_config(Path(tmp), 0, args, inline=True), env={})
        collector = Collector.open(config, detect=args.detect)
        try:
            start = time.perf_counter()
            for client, client_bodies in enumerate(bodies):
                for body in client_bodies:
                    lines = [line for line in body.split(b"\n") if line]
                    events = [decode_line(line, n) for n, line in enumerate(lines, start=1)]
                    collector.pipeline.ingest(f"bench{client}", events)
            return time.perf_counter() - start
        finally:
            collector.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--durability", choices=["durable", "none"], default="durable")
    parser.add_argument("--detect", action="store_true", help="the catalogue on, both paths")
    parser.add_argument("--mixed", action="store_true",
                        help="a busy API with a few attackers instead of failed logins only")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate both paths this many times; medians are reported")
    args = parser.parse_args()
    bodies = batches(args.events, args.batch, args.clients, args.mixed)
    total = sum(body.count(b"\n") for client in bodies for body in client)
    # Rounds alternate the paths, so load that comes and goes touches both alike; the same
    # code varies by 10-15% between back-to-back runs on this 2-core VM.
    rounds: list[tuple[float, float, dict[str, float]]] = []
    for _ in range(args.rounds):
        cpu: dict[str, float] = {}
        base = in_process(bodies, args)
        rounds.append((base, over_http(bodies, args, cpu), cpu))
    _, http, cpu = sorted(rounds, key=lambda r: r[1])[len(rounds) // 2]
    base = statistics.median(r[0] for r in rounds)
    print(f"{total} events, batches of {args.batch}, {args.clients} clients, "
          f"durability {args.durability}, catalogue {'on' if args.detect else 'off'}, "
          f"traffic {'mixed' if args.mixed else 'failed logins'}, median of {args.rounds}")
    print(f"{'path':<40}{'seconds':>10}{'events/s':>12}{'ratio':>8}")
    for name, seconds in (("Pipeline.ingest in-process, inline index", base),
                          ("POST /v1/events (HTTP), indexer process", http)):
        print(f"{name:<40}{seconds:>10.2f}{total / seconds:>12,.0f}{base / seconds:>8.2f}")
    if args.rounds > 1:
        print("HTTP events/s per round: "
              + ", ".join(f"{total / seconds:,.0f}" for _, seconds, _ in rounds))
    # A process busy all the time spends `seconds` of CPU: the one nearest that is the limit.
    print("CPU per event over HTTP (user + system), median round:")
    for name, used in cpu.items():
        print(f"  {name:<38}{used / total * 1e6:>6.1f} us  ({used / http:.0%} of a core)")

if __name__ == "__main__":
    main()
