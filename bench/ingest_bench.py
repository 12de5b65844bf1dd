"""Ingest throughput, end to end (ledger + index), beside rsyslog on the same machine.

(a) HTTP: a local load generator (`http_load.py`, 4 sources at once by default) POSTs
    signed batches of 500 ECS events, every one from a new address, to `apiwatch serve` (its
    defaults: the catalogue on, the index written by its indexer process); then again with
    the catalogue off (issue 4's measure: all the way to ledger + index).
(b) File: `apiwatch ingest` of an sshd log of N lines built from the real OpenSSH_2k lines.
Baseline, same run: rsyslogd receiving the same events over TCP (octet-counted), parsing the
JSON (mmjsonparse) and writing them to a file.

    python bench/ingest_bench.py [--lines 1000000] [--http-events 200000] [--rounds 1]
        [--sources 4] [--profile]

`--rounds N` measures rsyslog and (a) with the catalogue off N times, interleaved, and reports
each round's ratio and the medians: on this project's 2-core VMs rsyslog alone gave 102k to 186k
events/s in three runs of one hour. The catalogue-off rounds' acknowledgement latencies (each
batch from sending to its answer) are printed as p50, p90, p99 and max. `--sources N` posts
from N sources at once instead of 4 (each keeps one batch in flight): more sources raise the
rate only while the cores have time to spare. `--profile` runs (b) once more under cProfile and
prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from apiwatch.events import make_event
from apiwatch.formats.ecs import encode_ecs
from http_load import Refused, post_all, sign_all, wait_ready

REPO = Path(__file__).resolve().parents[1]
OPENSSH = REPO.parent / "shared" / "data" / "logs" / "loghub" / "OpenSSH" / "OpenSSH_2k.log"
APIWATCH = shutil.which("apiwatch") or "apiwatch"
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
TOKEN = "aws_bench_token_0123456789abcdef0123456789abcdef"
BATCH = 500
CLIENTS = 4  # sources posting at once, as a fleet of API instances does


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def sshd_log(path: Path, lines: int) -> None:
    """`lines` lines cycling through the real OpenSSH log (dates kept, so one year)."""
    real = OPENSSH.read_bytes().splitlines(keepends=True)
    with path.open("wb") as out:
        for i in range(lines):
            out.write(real[i % len(real)])


def json_events(count: int, clients: int = CLIENTS) -> list[bytes]:
    """`count` ECS events as the HTTP batches carry them (one JSON object per line); each
    of the `clients` sources numbers its own (event i belongs to source i % clients)."""
    return [
        encode_ecs(make_event("authn_login_fail", {
            "source.ip": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
            "user.name": f"user{i % 1000}", "url.path": "/login",
            "apiwatch.seq": i // clients + 1,
        }))
        for i in range(count)
    ]


def rsyslog_rate(lines: list[bytes], folder: Path) -> float:
    """Events/s of rsyslogd receiving `lines` as syslog over TCP, mmjsonparse, to a file."""
    port = free_port()
    out = folder / "rsyslog-out.log"
    (folder / "rs-work").mkdir(exist_ok=True)
    conf = folder / "rsyslog.conf"
    conf.write_text(f"""
global(workDirectory="{folder / 'rs-work'}" maxMessageSize="64k")
module(load="imtcp")
module(load="mmjsonparse")
template(name="json" type="string" string="%$!all-json%\\n")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="in")
ruleset(name="in") {{
  action(type="mmjsonparse" cookie="")
  action(type="omfile" file="{out}" template="json" asyncWriting="on" ioBufferSize="256k")
}}
""")
    proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(folder / "rs.pid")])
    try:
        wait_port(port)
        header = b"<14>1 2024-01-01T00:00:00Z bench app - - - "
        frames = [header + line.rstrip(b"\n") for line in lines]
        payload = b"".join(b"%d %s" % (len(f), f) for f in frames)
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(payload)
        while not out.exists():
            time.sleep(0.01)
        # Counted as it grows, not read again from the start on each look: the reader would
        # take a growing share of the two cores from rsyslog.
        seen = 0
        with out.open("rb") as fh:
            while seen < len(lines):
                chunk = fh.read(1 << 20)
                if not chunk:
                    time.sleep(0.01)
                seen += chunk.count(b"\n")
        return len(lines) / (time.perf_counter() - started)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        out.unlink(missing_ok=True)


def http_rate(
    events: list[bytes],
    folder: Path,
    catalogue: bool = True,
    round_number: int = 0,
    latencies: list[float] | None = None,
    clients: int = CLIENTS,
) -> float:
    """Events/s of signed batches POSTed to `apiwatch serve` (acknowledged = durable) by
    `clients` concurrent sources (as `json_events` numbered them); `catalogue=False` turns
    detection off (ledger + index only). Each round writes a data directory of its own;
    `latencies` receives each batch's."""
    port = free_port()
    config = folder / "apiwatch.toml"
    sources = "".join(f'[sources.bench{c}]\ntoken = "{TOKEN}{c}"\n' for c in range(clients))
    data = "http-data" if catalogue else f"http-data-nodetect-{round_number}"
    config.write_text(f'data_dir = "{data}"\n[server]\nlisten = "127.0.0.1:{port}"\n'
                      + ("" if catalogue else "[alerts]\ncatalogue = false\n") + sources)
    log = (folder / "serve.log").open("wb")
    proc = subprocess.Popen([APIWATCH, "serve", "--config", str(config)], stderr=log)
    bodies = [
        [b"".join(mine[i:i + BATCH]) for i in range(0, len(mine), BATCH)]
        for mine in (events[client::clients] for client in range(clients))
    ]
    try:
        wait_ready(port)
        signed = sign_all(bodies, lambda client: f"{TOKEN}{client}")
        try:
            return len(events) / post_all(port, signed, latencies)
        except (Refused, OSError) as exc:
            tail = (folder / "serve.log").read_text()[-2000:]
            raise SystemExit(f"POST failed: {exc}\nserve stderr:\n{tail}") from None
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def percentiles(values: list[float]) -> list[float]:
    """p50, p90, p99 and the largest of `values` (nearest rank)."""
    ordered = sorted(values)
    last = len(ordered) - 1
    return [ordered[round(last * q)] for q in (0.5, 0.9, 0.99, 1.0)]


def file_rate(log: Path, lines: int, folder: Path, data: str) -> tuple[float, str]:
    """Lines/s of `apiwatch ingest` of `log`, and its summary line."""
    started = time.perf_counter()
    done = subprocess.run(
        [APIWATCH, "ingest", "--format", "sshd", "--year", "2024",
         "--data", str(folder / data), str(log)],
        capture_output=True, text=True, check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"apiwatch ingest failed: {done.stderr.strip()}")
    return lines / seconds, done.stdout.strip().splitlines()[-1]


def profile_ingest(log: Path, folder: Path) -> str:
    """cProfile of an in-process `apiwatch ingest`: the top functions by cumulative time."""
    from click.testing import CliRunner  # noqa: PLC0415

    from apiwatch.cli import main  # noqa: PLC0415

    profiler = cProfile.Profile()
    profiler.enable()
    CliRunner().invoke(main, ["ingest", "--format", "sshd", "--year", "2024", "--data",
                              str(folder / "profile-data"), str(log)])
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--http-events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--sources", type=int, default=CLIENTS)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chdir(folder)
        log = folder / "auth.log"
        sshd_log(log, args.lines)
        events = json_events(args.http_events, args.sources)

        rounds = []
        latencies: list[float] = []
        for number in range(args.rounds):
            baseline_rate = rsyslog_rate(events, folder)
            bare_rate = http_rate(events, folder, False, number, latencies, args.sources)
            rounds.append((baseline_rate, bare_rate))
        baseline = statistics.median(r for r, _ in rounds)
        bare = statistics.median(b for _, b in rounds)
        http = http_rate(events, folder, clients=args.sources)
        file_lines, summary = file_rate(log, args.lines, folder, "file-data")
        rows = [
            ("rsyslog imtcp+mmjsonparse+omfile", args.http_events, baseline),
            (f"(a) HTTP POST /v1/events, {args.sources} x batches of 500", args.http_events, http),
            ("(a) same, catalogue off (ledger + index only)", args.http_events, bare),
            (f"(b) apiwatch ingest sshd ({args.lines:,} lines)", args.lines, file_lines),
        ]
        print(f"{'case':48} {'items':>10} {'per second':>12} {'vs rsyslog':>10}")
        for name, items, rate in rows:
            print(f"{name:48} {items:>10,} {rate:>12,.0f} {rate / baseline:>10.2f}")
        print(f"ingest summary: {summary}")
        marks = zip(("p50", "p90", "p99", "max"), percentiles(latencies), strict=True)
        print("(a) catalogue off, each batch from sending to its answer: "
              + ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in marks))
        if args.rounds > 1:
            print("rounds, rsyslog and (a) catalogue off: " + "; ".join(
                f"{r:,.0f} / {b:,.0f} ({b / r:.2f})" for r, b in rounds
            ) + " (rsyslog and catalogue off: medians)")
        if args.profile:
            print(profile_ingest(log, folder))


if __name__ == "__main__":
    main()
