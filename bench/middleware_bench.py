"""Cost of the ASGI capture middleware on a trivial FastAPI endpoint under uvicorn, load from wrk.

    python bench/middleware_bench.py [--seconds 10] [--connections 32]

Each mode runs uvicorn (one worker, access log off unless the mode says so) in its own process
on 127.0.0.1, and wrk drives it; the baseline is the same endpoint with no middleware, measured
in the same run. Modes: `none`; `failures` (capture's default: the 200s are not logged);
`access` (capture's access log, every request, to a JSON-lines file); `uvicorn-log` (no
capture, uvicorn's own access log to a file). Goals: failures <= 5% loss, access <= 20% loss
and less than half the cost of uvicorn's log, <= 0.5 ms added p99.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("none", "failures", "access", "uvicorn-log")


def serve(mode: str, port: int, workdir: Path) -> None:
    """Run the app for `mode` (in this process, as the server child)."""
    # Imported here: only the server child needs them.
    import uvicorn  # noqa: PLC0415
    from fastapi import FastAPI  # noqa: PLC0415

    from apiwatch.capture.asgi import ApiwatchMiddleware  # noqa: PLC0415
    from apiwatch.capture.config import Capture  # noqa: PLC0415
    from apiwatch.capture.sinks import JsonLinesFileSink  # noqa: PLC0415

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    if mode in ("failures", "access"):
        sink = JsonLinesFileSink(workdir / "events.jsonl", max_bytes=1 << 40)
        capture = Capture("bench", sinks=[sink], access_log=mode == "access")
        app.add_middleware(ApiwatchMiddleware, capture=capture)
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=mode == "uvicorn-log",
                log_level="info" if mode == "uvicorn-log" else "warning")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def measure(mode: str, seconds: int, connections: int, workdir: Path) -> tuple[float, float]:
    """(requests per second, p99 latency in ms) of `mode` under wrk."""
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
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
            capture_output=True, text=True, check=True,
        ).stdout
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return rps, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--serve", choices=MODES)
    parser.add_argument("--port", type=int)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.workdir)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        results = {m: measure(m, args.seconds, args.connections, Path(tmp)) for m in MODES}
    base_rps, base_p99 = results["none"]
    uv_cost = 1 - results["uvicorn-log"][0] / base_rps
    print(f"{'mode':<12} {'req/s':>9} {'vs none':>8} {'p99 ms':>8} {'+p99 ms':>8}")
    for mode, (rps, p99) in results.items():
        print(f"{mode:<12} {rps:>9.0f} {rps / base_rps:>8.3f} {p99:>8.2f} {p99 - base_p99:>+8.2f}")
    access_cost = 1 - results["access"][0] / base_rps
    print(f"\nthroughput loss: failures {1 - results['failures'][0] / base_rps:.1%}, "
          f"access {access_cost:.1%}, uvicorn access log {uv_cost:.1%} "
          f"(access / uvicorn-log cost ratio {access_cost / uv_cost if uv_cost else 0:.2f})")


if __name__ == "__main__":
    main()
