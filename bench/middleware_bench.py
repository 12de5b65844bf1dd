"""Cost of the ASGI capture middleware on a trivial FastAPI endpoint under uvicorn, load from wrk.

    python bench/middleware_bench.py [--seconds 10] [--connections 32] [--rounds 3]
                                     [--load 0.5] [--paced-connections 16] [--modes ...]

Each mode runs uvicorn (one worker, access log off unless the mode says so) in its own process
on 127.0.0.1, and wrk drives it; the baseline is the same endpoint with no middleware, measured
in the same run. Modes: `none`; `failures` (capture's default: the 200s are not logged);
`access` (capture's access log, every request, to a JSON-lines file, built and written by the
emitter's thread: `writer_process=False`); `access-writer` (the same built and written by a
child process: `writer_process=True`); `uvicorn-log` (no capture, uvicorn's own access log to a
file). Goals: failures <= 5% loss, access <= 20% loss and less than half the cost of uvicorn's
log, <= 0.5 ms added p99.

Two runs per mode, because one closed loop cannot measure both throughput and latency:
- saturated: wrk's `--connections` keep the server busy; requests/s and CPU per request. Its
  latency is only connections / throughput (Little's law): a 7% throughput loss adds about
  0.5 ms to every percentile at 32 connections, so its p99 says nothing of the p99 goal.
- paced: the offered load is fixed at `--load` times the bare server's saturated rate (measured
  once before the rounds), each of `--paced-connections` waiting a random (exponential) think
  time before its next request (wrk's Lua `delay()`), so that together they send about that
  many requests per second as a Poisson stream. The server is busy only part of the time, and
  p50 / p99 / p99.9 show what capture adds to a request: the p99 goal is read from this run.
  wrk times each request from its send, after the think time.

Rounds interleave the modes and each figure is the median over rounds, so load that comes and
goes on a shared machine touches every mode alike; the load average is printed with each table.
Besides requests/s, the CPU time the server's processes spent per request (user + system from
/proc, children included, read after the load stopped and the emitter caught up) is reported:
it varies far less with other load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

MODES = ("none", "failures", "access", "access-writer", "uvicorn-log")


def make_app(mode: str, workdir: Path) -> tuple[Any, Any]:
    """The FastAPI app of `mode` and its Capture (None without the middleware)."""
    # Imported here: only the server child and the in-process part need them.
    from fastapi import FastAPI  # noqa: PLC0415

    from apiwatch.capture.asgi import ApiwatchMiddleware  # noqa: PLC0415
    from apiwatch.capture.config import Capture  # noqa: PLC0415
    from apiwatch.capture.sinks import JsonLinesFileSink  # noqa: PLC0415

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    capture = None
    if mode in ("failures", "access", "access-writer"):
        sink = JsonLinesFileSink(workdir / f"{mode}-{os.getpid()}.jsonl", max_bytes=1 << 40)
        capture = Capture("bench", sinks=[sink], access_log=mode != "failures",
                          writer_process=mode == "access-writer")
        app.add_middleware(ApiwatchMiddleware, capture=capture)
    return app, capture


def serve(mode: str, port: int, workdir: Path) -> None:
    """Run the app for `mode` (in this process, as the server child)."""
    import uvicorn  # noqa: PLC0415

    app, _ = make_app(mode, workdir)
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=mode == "uvicorn-log",
                log_level="info" if mode == "uvicorn-log" else "warning")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


# wrk's Lua hooks for the paced run. `delay()` is a connection's think time in whole
# milliseconds (wrk's timer unit), drawn from an exponential distribution so that the
# connections together send a Poisson stream; `done()` prints what wrk's own summary lacks
# (p99.9), in microseconds.
PACED_LUA = r"""
local mean_ms = 0
function init(args)
  mean_ms = tonumber(args[1])
  math.randomseed(os.time() * 1000 + tonumber(args[2]))
end
function delay()
  return math.floor(-math.log(1 - math.random()) * mean_ms + 0.5)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("paced %.0f %.0f %.0f %.0f %.0f %.0f\n", summary.requests,
    summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""


class Saturated(NamedTuple):
    """wrk's closed loop at `--connections`: throughput and its cost."""

    rps: float
    cpu_us: float  # server CPU time per request
    p99_ms: float  # connections / rps at saturation: not the latency goal's measure


class Paced(NamedTuple):
    """A fixed offered load below saturation: the latency capture adds."""

    rps: float  # achieved: a connection's think time starts when its response arrived
    p50_ms: float
    p99_ms: float
    p999_ms: float
    cpu_us: float


class Result(NamedTuple):
    """Both runs of one mode in one round, and the 1-minute load average after them."""

    saturated: Saturated
    paced: Paced
    load: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its live children, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wrk(pid: int, args: list[str]) -> tuple[str, float]:
    """wrk's output for `args`, and the server's CPU seconds meanwhile, including what capture
    still had to write when the load stopped (part of the cost)."""
    before = cpu_seconds(pid)
    out = subprocess.run(["wrk", "-t1", *args], capture_output=True, text=True,
                         check=True).stdout
    time.sleep(1.0)
    return out, cpu_seconds(pid) - before


def saturate(pid: int, url: str, seconds: int, connections: int) -> Saturated:
    """The closed-loop run: throughput and CPU per request."""
    out, cpu = wrk(pid, [f"-c{connections}", f"-d{seconds}s", "--latency", url])
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Saturated(rps, cpu / done * 1e6, p99)


def pace(pid: int, url: str, seconds: int, connections: int, rate: float,
         script: Path) -> Paced:
    """The run at `rate` requests/s offered: latency percentiles and CPU per request."""
    think_ms = connections / rate * 1000
    out, cpu = wrk(pid, [f"-c{connections}", f"-d{seconds}s", "-s", str(script), url, "--",
                         f"{think_ms:.3f}", str(pid)])
    line = re.search(r"^paced (.+)$", out, re.M).group(1)  # type: ignore[union-attr]
    done, duration_us, errors, p50, p99, p999 = (float(v) for v in line.split())
    if errors:
        raise SystemExit(f"paced run: {errors:.0f} errors\n{out}")
    return Paced(done / duration_us * 1e6, p50 / 1000, p99 / 1000, p999 / 1000,
                 cpu / done * 1e6)


@contextmanager
def server(mode: str, workdir: Path) -> Iterator[tuple[int, str]]:
    """A warmed-up uvicorn serving `mode`: its pid and the endpoint's URL."""
    port = free_port()
    with (workdir / f"{mode}.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", mode, "--port", str(port), "--workdir",
             str(workdir)], stdout=log, stderr=log,
        )
        try:
            deadline = time.monotonic() + 20
            while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{mode}: server did not start")
                time.sleep(0.1)
            url = f"http://127.0.0.1:{port}/items/42"
            subprocess.run(["wrk", "-t1", "-c8", "-d2s", url], capture_output=True, check=True)
            yield proc.pid, url
        finally:
            proc.terminate()
            proc.wait(10)


def measure(mode: str, args: argparse.Namespace, rate: float, script: Path,
            workdir: Path) -> Result:
    """The paced, then the saturated run of `mode`, on one server."""
    with server(mode, workdir) as (pid, url):
        paced = pace(pid, url, args.seconds, args.paced_connections, rate, script)
        saturated = saturate(pid, url, args.seconds, args.connections)
    return Result(saturated, paced, os.getloadavg()[0])


def cpu_in_process(mode: str, requests: int, workdir: Path) -> tuple[float, float]:
    """CPU microseconds per request of the app of `mode` called directly (no server, no
    network): in the app's process (the emitter thread's work included), and in all (the writer
    process's too). The measure least disturbed by other load."""
    app, capture = make_app(mode, workdir)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/items/42", "raw_path": b"/items/42", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"wrk/4.1")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    async def drive(count: int) -> None:
        for _ in range(count):
            await app(dict(scope), receive, send)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(drive(1000))  # warm up
    writer = None if capture is None else capture.emitter.writer
    child_before = 0.0 if writer is None else cpu_seconds(writer.pid)
    started = time.process_time()
    loop.run_until_complete(drive(requests))
    if capture is not None:
        capture.emitter.flush(60)
    cpu = time.process_time() - started
    child = 0.0 if writer is None else cpu_seconds(writer.pid) - child_before
    if capture is not None:
        capture.close()
    loop.close()
    return cpu / requests * 1e6, (cpu + child) / requests * 1e6


def medians(rows: list[Any]) -> Any:
    """The field-wise median of NamedTuples of one type."""
    return type(rows[0])(*(statistics.median(column) for column in zip(*rows, strict=True)))


def report(runs: dict[str, list[Result]], rate: float, args: argparse.Namespace) -> None:
    """Print the saturated and the paced table, and the goals' figures."""
    sat = {m: medians([r.saturated for r in rs]) for m, rs in runs.items()}
    paced = {m: medians([r.paced for r in rs]) for m, rs in runs.items()}
    loads = [r.load for rs in runs.values() for r in rs]
    base, pbase = sat["none"], paced["none"]
    print(f"median of {args.rounds} interleaved rounds of {args.seconds} s per run, "
          f"{os.cpu_count()} cores, 1-min load average {min(loads):.1f}-{max(loads):.1f} "
          f"after the runs (median {statistics.median(loads):.1f})")
    print(f"\nsaturated, {args.connections} connections (p99 here is connections / rate):")
    print(f"{'mode':<14} {'req/s':>8} {'vs none':>8} {'cpu us/req':>11} {'+cpu us':>8} "
          f"{'p99 ms':>7}")
    for mode, r in sat.items():
        print(f"{mode:<14} {r.rps:>8.0f} {r.rps / base.rps:>8.3f} {r.cpu_us:>11.1f} "
              f"{r.cpu_us - base.cpu_us:>+8.1f} {r.p99_ms:>7.2f}")
    print(f"\npaced at {rate:.0f} req/s offered ({args.load:.0%} of bare saturated), "
          f"{args.paced_connections} connections:")
    print(f"{'mode':<14} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>9} "
          f"{'+p50':>6} {'+p99':>6} {'+p99.9':>7} {'cpu us/req':>11}")
    for mode, q in paced.items():
        print(f"{mode:<14} {q.rps:>6.0f} {q.p50_ms:>7.2f} {q.p99_ms:>7.2f} {q.p999_ms:>9.2f} "
              f"{q.p50_ms - pbase.p50_ms:>+6.2f} {q.p99_ms - pbase.p99_ms:>+6.2f} "
              f"{q.p999_ms - pbase.p999_ms:>+7.2f} {q.cpu_us:>11.1f}")
    print("\nper round (saturated req/s; paced p99 ms; load average):")
    for mode, rs in runs.items():
        print(f"  {mode:<14} " + "   ".join(
            f"{r.saturated.rps:.0f}; {r.paced.p99_ms:.2f}; {r.load:.1f}" for r in rs))
    if "uvicorn-log" not in sat:
        return
    uv_loss = 1 - sat["uvicorn-log"].rps / base.rps
    uv_cpu = sat["uvicorn-log"].cpu_us - base.cpu_us
    print("\ncost against uvicorn's access log (throughput loss; added CPU per request):")
    for mode in (m for m in ("failures", "access", "access-writer") if m in sat):
        loss = 1 - sat[mode].rps / base.rps
        cpu = sat[mode].cpu_us - base.cpu_us
        print(f"  {mode:<14} loss {loss:6.1%} ({loss / uv_loss:5.2f} of uvicorn's {uv_loss:.1%})"
              f"   +{cpu:5.1f} us ({cpu / uv_cpu:5.2f} of uvicorn's +{uv_cpu:.1f} us)")


def in_process_report(modes: list[str], rounds: int) -> None:
    """CPU per request of the app called directly, the measure least disturbed by other load."""
    figures: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for mode, rows in figures.items():
                rows.append(cpu_in_process(mode, 20_000, Path(tmp)))
    cpu = {m: [statistics.median(c) for c in zip(*v, strict=True)] for m, v in figures.items()}
    bare = cpu["none"][0]
    print(f"\napp called in process (no server), CPU us per request, median; load average "
          f"{os.getloadavg()[0]:.1f}:")
    for mode, (app_cpu, total) in cpu.items():
        print(f"  {mode:<14} app process {app_cpu:6.1f} ({app_cpu / bare:.2f}x)   "
              f"all processes {total:6.1f} ({total / bare:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", type=float, default=0.5,
                        help="paced offered load, as a fraction of the bare saturated rate")
    parser.add_argument("--rate", type=float, help="paced offered load in req/s (no calibration)")
    parser.add_argument("--paced-connections", type=int, default=16)
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated subset of " + ", ".join(MODES))
    parser.add_argument("--serve", choices=MODES)
    parser.add_argument("--port", type=int)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.workdir)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    modes = ["none", *(m for m in args.modes.split(",") if m in MODES and m != "none")]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        script = workdir / "paced.lua"
        script.write_text(PACED_LUA)
        rate = args.rate
        if rate is None:
            with server("none", workdir) as (pid, url):
                rate = args.load * saturate(pid, url, args.seconds, args.connections).rps
        runs: dict[str, list[Result]] = {m: [] for m in modes}
        for _ in range(args.rounds):
            for mode in modes:
                runs[mode].append(measure(mode, args, rate, script, workdir))
    report(runs, rate, args)
    in_process_report([m for m in modes if m != "uvicorn-log"], args.rounds)


if __name__ == "__main__":
    main()
