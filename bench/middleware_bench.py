"""Cost of the ASGI capture middleware on a trivial FastAPI endpoint under uvicorn, load from wrk.

    python bench/middleware_bench.py [--seconds 10] [--connections 32] [--rounds 3]

Each mode runs uvicorn (one worker, access log off unless the mode says so) in its own process
on 127.0.0.1, and wrk drives it; the baseline is the same endpoint with no middleware, measured
in the same run. Modes: `none`; `failures` (capture's default: the 200s are not logged);
`access` (capture's access log, every request, to a JSON-lines file); `access-writer` (the same
with `writer_process=True`: events built and written by a child process); `uvicorn-log` (no
capture, uvicorn's own access log to a file). Goals: failures <= 5% loss, access <= 20% loss
and less than half the cost of uvicorn's log, <= 0.5 ms added p99.

Rounds interleave the modes and each figure is the median over rounds, so load that comes and
goes on a shared machine touches every mode alike. Besides requests/s and p99, the CPU time the
server's processes spent per request (user + system from /proc, children included, read after
the load stops and the emitter caught up) is reported: it varies far less with other load.
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


class Result(NamedTuple):
    """One wrk run against one mode."""

    rps: float
    p99_ms: float
    cpu_us: float  # server CPU time per request


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


def measure(mode: str, seconds: int, connections: int, workdir: Path) -> Result:
    """Throughput, p99 latency and server CPU per request of `mode` under wrk."""
    port = free_port()
    log = (workdir / f"{mode}.log").open("wb")
    server = subprocess.Popen(
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
        cpu_before = cpu_seconds(server.pid)
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
            capture_output=True, text=True, check=True,
        ).stdout
        time.sleep(1.0)  # let capture finish writing what the run queued: it is part of the cost
        cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Result(rps, p99, cpu / done * 1e6)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", choices=MODES)
    parser.add_argument("--port", type=int)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.workdir)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    runs: dict[str, list[Result]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for mode in MODES:
                runs[mode].append(measure(mode, args.seconds, args.connections, Path(tmp)))
    results = {
        mode: Result(*(statistics.median(column) for column in zip(*rs, strict=True)))
        for mode, rs in runs.items()
    }
    base = results["none"]
    print(f"median of {args.rounds} interleaved rounds of {args.seconds} s; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'mode':<12} {'req/s':>9} {'vs none':>8} {'p99 ms':>8} {'+p99 ms':>8} "
          f"{'cpu us/req':>11} {'+cpu us':>8}")
    for mode, r in results.items():
        print(f"{mode:<12} {r.rps:>9.0f} {r.rps / base.rps:>8.3f} {r.p99_ms:>8.2f} "
              f"{r.p99_ms - base.p99_ms:>+8.2f} {r.cpu_us:>11.1f} {r.cpu_us - base.cpu_us:>+8.1f}")

    def loss(mode: str) -> float:
        return 1 - results[mode].rps / base.rps

    def cpu_cost(mode: str) -> float:
        return results[mode].cpu_us / base.cpu_us - 1

    uv_cost = loss("uvicorn-log")
    print(f"\nthroughput loss: failures {loss('failures'):.1%}, access {loss('access'):.1%}, "
          f"access-writer {loss('access-writer'):.1%}, uvicorn access log {uv_cost:.1%} "
          f"(access-writer / uvicorn-log cost ratio "
          f"{loss('access-writer') / uv_cost if uv_cost else 0:.2f})")
    print(f"server CPU per request over bare: failures {cpu_cost('failures'):+.1%}, access "
          f"{cpu_cost('access'):+.1%}, access-writer {cpu_cost('access-writer'):+.1%}, "
          f"uvicorn access log {cpu_cost('uvicorn-log'):+.1%}")

    in_process: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES[:4]}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for mode, figures in in_process.items():
                figures.append(cpu_in_process(mode, 20_000, Path(tmp)))
    medians = {m: [statistics.median(c) for c in zip(*v, strict=True)]
               for m, v in in_process.items()}
    bare = medians["none"][0]
    print("\napp called in process (no server), CPU us per request, median:")
    for mode, (app_cpu, total) in medians.items():
        print(f"  {mode:<14} app process {app_cpu:6.1f} ({app_cpu / bare:.2f}x)   "
              f"all processes {total:6.1f} ({total / bare:.2f}x)")


if __name__ == "__main__":
    main()
