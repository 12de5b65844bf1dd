"""Cost of the ASGI capture middleware on a trivial FastAPI endpoint under uvicorn, load from wrk.

    python bench/middleware_bench.py [--seconds 10] [--connections 32] [--rounds 3]
                                     [--load 0.5] [--paced-connections 16] [--modes ...]
                                     [--no-pin] [--instructions [--requests 2000]
                                     [--layouts 3]]

Each mode runs uvicorn (one worker, access log off unless the mode says so) in its own process
on 127.0.0.1, and wrk drives it; the baseline is the same endpoint with no middleware, measured
in the same run. Modes: `none`; `failures` (capture's default: the 200s are not logged);
`access` (capture's access log, every request, to a JSON-lines file, built and written by the
emitter's thread: `writer_process=False`); `access-writer` (the same built and written by a
child process: `writer_process=True`); `access-offcore` (the same, the writer process moved to
the load generator's CPU when pinned: what the app pays when another core has room for the
writer); `uvicorn-log` (no capture, uvicorn's own access log to a
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

Rounds interleave the modes (in reverse order every other round, so that a drift of the
machine's speed touches the first and the last mode alike) and each figure is the median over
rounds, so load that comes and goes on a shared machine touches every mode alike; the load
average is printed with each table. Throughput is also read round by round: each round's
requests/s over the same round's `none`, whose median moves less than the ratio of the medians,
and whose range says how far a single round can be trusted. Besides requests/s, the CPU time the
server's processes spent per request (user + system from /proc, children included, read after
the load stopped and the emitter caught up) is reported. Each server closes its capture as it
exits and reports its counters: events queued, written and dropped because the queue was full,
summed per mode, so that throughput bought by dropping events would show.

With `taskset` and two CPUs or more, wrk runs on one CPU and the server on another (its threads
and the writer process inherit the affinity), so that they neither take turns on one core nor
get moved around by the scheduler; the output says so, and `--no-pin` lets them float. On two
CPUs this leaves the writer process no core of its own: pinned, `access-writer` measures the
app and its writer sharing one core (as deployed on one core), so its throughput and p99 come
out far worse than with `--no-pin`, where the writer takes the load generator's spare time;
`access-offcore` pins the writer to the load generator's CPU, where it competes with wrk.

Even so a noisy 2-core VM moves a mode's requests/s by 20% from round to round, too much to read
a 5% goal. `--instructions` (needs valgrind) adds a figure that does not depend on other load:
instructions per request in user space, counted by callgrind. Served: uvicorn runs under
callgrind with counting off until it is warmed up, then counts `--requests` requests sent by an
asyncio client over 16 keep-alive connections, in the server's process and its children (the
writer process) until they go idle (what capture queued is written by then). In process: the app
called directly, as for the CPU figure above. Each mode's +% against `none` is printed. It is
not time (cache misses, system calls and the GIL handover to the emitter's thread are not in
it), but it is what the middleware adds to the interpreter's work. With the hash seed fixed a run
repeats its count exactly, but the count depends on where objects land in memory: CPython's type
attribute cache is indexed by the address of the attribute's name, so the layout decides which
lookups miss it. Padding the environment (or a longer path in argv) by a few bytes moves the
count by 0.3% typically, and in some layouts hot lookups collide in that cache and a request
costs 1% more (4-5k instructions): as much as the code changes one wants to measure, and any
code change moves the layout too. So each figure is the mean over `--layouts` runs whose
environments differ in size, with half their range; comparing two versions of the code within
1% takes about 10. The modes that log every request also vary with how their events batch.
`--rounds 0 --instructions` runs only this part, without wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

MODES = ("none", "failures", "access", "access-writer", "access-offcore", "uvicorn-log")
#: Modes whose events a writer process builds and writes.
WRITER_MODES = ("access-writer", "access-offcore")
#: Modes that differ from another only where wrk drives a server (`access-offcore` is
#: `access-writer` placed on another CPU): the in-process and instruction figures skip them.
PINNING_ONLY = ("access-offcore",)


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
    if mode in ("failures", "access", *WRITER_MODES):
        sink = JsonLinesFileSink(workdir / f"{mode}-{os.getpid()}.jsonl", max_bytes=1 << 40)
        capture = Capture("bench", sinks=[sink], access_log=mode != "failures",
                          writer_process=mode in WRITER_MODES)
        app.add_middleware(ApiwatchMiddleware, capture=capture)
    return app, capture


def serve(mode: str, port: int, workdir: Path) -> None:
    """Run the app for `mode` (in this process, as the server child)."""
    import uvicorn  # noqa: PLC0415

    app, capture = make_app(mode, workdir)
    # uvicorn stops on SIGTERM, then raises it again with the handler it found: a no-op one
    # lets it return here (as `apiwatch serve` does).
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=mode == "uvicorn-log",
                log_level="info" if mode == "uvicorn-log" else "warning")
    if capture is not None:  # uvicorn returns on SIGTERM: deliver what is queued, then tell
        capture.close(60)
        stats = capture.emitter.stats
        print(f"{STATS_TAG} {stats.emitted} {stats.written} {stats.dropped_queue_full}",
              flush=True)


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


class Logged(NamedTuple):
    """What capture did with the events of one server's life (warm-up and both runs)."""

    emitted: int
    written: int
    dropped: int  # the queue was full: counted, never waited for


#: How the server child reports its capture's counters as it exits.
STATS_TAG = "apiwatch-bench-stats"


class Result(NamedTuple):
    """Both runs of one mode in one round, the 1-minute load average after them, and what
    capture logged meanwhile (None without capture)."""

    saturated: Saturated
    paced: Paced
    load: float
    logged: Logged | None


class Cores(NamedTuple):
    """Command prefixes placing wrk and the server on CPUs of their own (empty: not pinned)."""

    client: list[str]
    server: list[str]

    @classmethod
    def pick(cls, pin: bool) -> Cores:
        """wrk on the first CPU this process may use, the server on the second, when `pin` and
        taskset is there and there are two."""
        cpus = sorted(os.sched_getaffinity(0))
        if not pin or len(cpus) < 2 or shutil.which("taskset") is None:
            return cls([], [])
        return cls(["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])])

    def __str__(self) -> str:
        if not self.client:
            return "wrk and the server not pinned"
        return f"wrk pinned to CPU {self.client[-1]}, the server to CPU {self.server[-1]} (taskset)"


def family(pid: int) -> dict[int, list[str]]:
    """The /proc stat fields (those after the command name) of `pid` and of its live children."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            found[int(stat.parent.name)] = fields
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its live children, from /proc."""
    ticks = sum(int(fields[11]) + int(fields[12]) for fields in family(pid).values())
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(pid: int, args: list[str], pin: list[str]) -> tuple[str, float]:
    """wrk's output for `args`, and the server's CPU seconds meanwhile, including what capture
    still had to write when the load stopped (part of the cost)."""
    before = cpu_seconds(pid)
    out = subprocess.run([*pin, "wrk", "-t1", *args], capture_output=True, text=True,
                         check=True).stdout
    time.sleep(1.0)
    return out, cpu_seconds(pid) - before


def saturate(pid: int, url: str, seconds: int, connections: int, pin: list[str]) -> Saturated:
    """The closed-loop run: throughput and CPU per request."""
    out, cpu = wrk(pid, [f"-c{connections}", f"-d{seconds}s", "--latency", url], pin)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Saturated(rps, cpu / done * 1e6, p99)


def pace(pid: int, url: str, seconds: int, connections: int, rate: float,
         script: Path, pin: list[str]) -> Paced:
    """The run at `rate` requests/s offered: latency percentiles and CPU per request."""
    think_ms = connections / rate * 1000
    out, cpu = wrk(pid, [f"-c{connections}", f"-d{seconds}s", "-s", str(script), url, "--",
                         f"{think_ms:.3f}", str(pid)], pin)
    line = re.search(r"^paced (.+)$", out, re.M).group(1)  # type: ignore[union-attr]
    done, duration_us, errors, p50, p99, p999 = (float(v) for v in line.split())
    if errors:
        raise SystemExit(f"paced run: {errors:.0f} errors\n{out}")
    return Paced(done / duration_us * 1e6, p50 / 1000, p99 / 1000, p999 / 1000,
                 cpu / done * 1e6)


def send_requests(url: str, count: int, connections: int = 16) -> None:
    """Exactly `count` GETs of `url` (wrk runs for a time, not a count) over `connections`
    keep-alive connections, each sending its next request when the response has arrived."""
    parts = urlsplit(url)
    request = (f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: wrk/4.1\r\n"
               "\r\n").encode()

    async def connection(requests: int) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        for _ in range(requests):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
            if not head.startswith(b"HTTP/1.1 200 ") or length is None:
                raise SystemExit(f"unexpected response: {head!r}")
            await reader.readexactly(int(length.group(1)))
        writer.close()
        await writer.wait_closed()

    async def send_all() -> None:
        share, extra = divmod(count, connections)
        await asyncio.gather(*(connection(share + (i < extra)) for i in range(connections)))

    asyncio.run(send_all())


@contextmanager
def server(mode: str, workdir: Path, launcher: Sequence[str] = (),
           logged: list[Logged] | None = None) -> Iterator[tuple[int, str]]:
    """A warmed-up uvicorn serving `mode`, started by `launcher` (taskset, valgrind): its pid
    and the endpoint's URL. Once it exited, its capture's counters are appended to `logged`."""
    port = free_port()
    log_path = workdir / f"{mode}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*launcher, sys.executable, __file__, "--serve", mode, "--port", str(port),
             "--workdir", str(workdir)], stdout=log, stderr=log,
        )
        try:
            deadline = time.monotonic() + 120  # under valgrind, imports take a while
            while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{mode}: server did not start")
                time.sleep(0.1)
            url = f"http://127.0.0.1:{port}/items/42"
            send_requests(url, 1000)  # warm up
            yield proc.pid, url
        finally:
            proc.terminate()
            proc.wait(120)
    if logged is not None:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith(STATS_TAG):
                logged.append(Logged(*map(int, line.split()[1:])))


def measure(mode: str, args: argparse.Namespace, rate: float, script: Path,
            workdir: Path, cores: Cores) -> Result:
    """The paced, then the saturated run of `mode`, on one server."""
    logged: list[Logged] = []
    with server(mode, workdir, cores.server, logged) as (pid, url):
        if mode == "access-offcore" and cores.client:
            for child in family(pid):
                if child != pid:  # the writer process
                    os.sched_setaffinity(child, {int(cores.client[-1])})
        paced = pace(pid, url, args.seconds, args.paced_connections, rate, script, cores.client)
        saturated = saturate(pid, url, args.seconds, args.connections, cores.client)
    return Result(saturated, paced, os.getloadavg()[0], logged[0] if logged else None)


@contextmanager
def app_in_process(mode: str, workdir: Path) -> Iterator[tuple[Callable[[int], None], Any]]:
    """A function serving that many requests by calling the app of `mode` directly (no server,
    no network), warmed up; and the app's Capture (None without the middleware)."""
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
    try:
        loop.run_until_complete(drive(1000))
        yield lambda count: loop.run_until_complete(drive(count)), capture
    finally:
        if capture is not None:
            capture.close()
        loop.close()


def cpu_in_process(mode: str, requests: int, workdir: Path) -> tuple[float, float]:
    """CPU microseconds per request of the app of `mode` called directly: in the app's process
    (the emitter thread's work included), and in all (the writer process's too). The measure of
    time least disturbed by other load."""
    with app_in_process(mode, workdir) as (run, capture):
        writer = None if capture is None else capture.emitter.writer
        child_before = 0.0 if writer is None else cpu_seconds(writer.pid)
        started = time.process_time()
        run(requests)
        if capture is not None:
            capture.emitter.flush(60)
        cpu = time.process_time() - started
        child = 0.0 if writer is None else cpu_seconds(writer.pid) - child_before
    return cpu / requests * 1e6, (cpu + child) / requests * 1e6


def callgrind(out: Path, layout: int) -> list[str]:
    """The command prefix running Python under callgrind, not counting until told to, writing to
    `out`.<pid>. A fixed hash seed makes a run repeat its count; `layout` pads the environment,
    which moves the process's objects (see the module docstring). Valgrind follows a fork anyway,
    but without `--trace-children` callgrind_control cannot reach the child."""
    return ["env", "PYTHONHASHSEED=0", f"BENCH_LAYOUT={'x' * 40 * layout}", "valgrind",
            "--tool=callgrind", "--instr-atstart=no", "--trace-children=yes",
            f"--callgrind-out-file={out}.%p"]


def count_instructions(pids: Iterable[int], work: Callable[[], None]) -> None:
    """Do `work` while callgrind counts in `pids`, then have them write out their counts."""
    pids = list(pids)

    def control(option: str) -> None:
        for pid in pids:
            done = subprocess.run(["callgrind_control", option, str(pid)], capture_output=True,
                                  text=True, check=True)
            if "Error" in done.stdout + done.stderr:  # its exit status is 0 all the same
                raise SystemExit(f"callgrind_control {option} {pid}: {done.stdout}{done.stderr}")

    control("--instr=on")
    work()
    control("--instr=off")
    control("--dump")


class Counted(NamedTuple):
    """Instructions per request in the app's process, and in its children (the writer)."""

    app: float
    children: float


def read_counts(out: Path, pid: int, requests: int) -> Counted:
    """What callgrind counted in `pid` and in its children per request, from its files
    `out`.<pid>[.<dump>] (a `totals:` line each)."""
    app = children = 0
    for path in out.parent.glob(f"{out.name}.*"):
        total = sum(int(line.split()[1]) for line in path.read_text().splitlines()
                    if line.startswith("totals:"))
        if path.name.split(".")[1] == str(pid):
            app += total
        else:
            children += total
    return Counted(app / requests, children / requests)


def settle(pid: int) -> None:
    """Return once `pid` and its children stop using CPU: capture has written what it queued."""
    used = cpu_seconds(pid)
    while True:
        time.sleep(0.5)
        used, before = cpu_seconds(pid), used
        if used - before < 0.02:
            return


def instructions_served(mode: str, requests: int, workdir: Path, layout: int) -> Counted:
    """Instructions per request of uvicorn serving `mode`."""
    out = workdir / f"served-{mode}-{layout}"
    with server(mode, workdir, callgrind(out, layout)) as (pid, url):
        def work() -> None:
            send_requests(url, requests)
            settle(pid)

        count_instructions(family(pid), work)
    return read_counts(out, pid, requests)


def instructions_in_process(mode: str, requests: int, workdir: Path, layout: int) -> Counted:
    """Instructions per request of the app of `mode` called directly (`count_in_process`)."""
    out = workdir / f"direct-{mode}-{layout}"
    command = [*callgrind(out, layout), sys.executable, __file__, "--in-process", mode,
               "--requests", str(requests), "--workdir", str(workdir)]
    with (workdir / f"direct-{mode}.log").open("wb") as log, subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
    ) as child:
        stdin, stdout = child.stdin, child.stdout
        assert stdin is not None
        assert stdout is not None

        def work() -> None:
            stdin.write("go\n")
            stdin.flush()
            stdout.readline()

        stdout.readline()  # warmed up
        count_instructions(family(child.pid), work)
        stdin.close()
    return read_counts(out, child.pid, requests)


def count_in_process(mode: str, requests: int, workdir: Path) -> None:
    """The child of `instructions_in_process`: once warmed up, it says so and waits for a line;
    then serves `requests` requests, waits for capture to write them, and says so."""
    with app_in_process(mode, workdir) as (run, capture):
        print("warm", flush=True)
        sys.stdin.readline()
        run(requests)
        if capture is not None:
            capture.emitter.flush(600)
        print("done", flush=True)
        sys.stdin.readline()  # the parent has stopped counting


def medians(rows: list[Any]) -> Any:
    """The field-wise median of NamedTuples of one type."""
    return type(rows[0])(*(statistics.median(column) for column in zip(*rows, strict=True)))


def report(runs: dict[str, list[Result]], rate: float, args: argparse.Namespace,
           cores: Cores) -> None:
    """Print the saturated and the paced table, and the goals' figures."""
    sat = {m: medians([r.saturated for r in rs]) for m, rs in runs.items()}
    paced = {m: medians([r.paced for r in rs]) for m, rs in runs.items()}
    # Each round's req/s over the same round's bare server's.
    paired = {m: [r.saturated.rps / b.saturated.rps for r, b in zip(rs, runs["none"],
                                                                     strict=True)]
              for m, rs in runs.items()}
    loads = [r.load for rs in runs.values() for r in rs]
    base, pbase = sat["none"], paced["none"]
    print(f"median of {args.rounds} interleaved rounds of {args.seconds} s per run, "
          f"{os.cpu_count()} cores, {cores}; 1-min load average {min(loads):.1f}-"
          f"{max(loads):.1f} after the runs (median {statistics.median(loads):.1f})")
    print(f"\nsaturated, {args.connections} connections (p99 here is connections / rate; "
          "vs none: ratio of the medians; paired: median of the rounds' ratios, and their range):")
    print(f"{'mode':<14} {'req/s':>8} {'vs none':>8} {'paired':>7} {'range':>11} "
          f"{'cpu us/req':>11} {'+cpu us':>8} {'p99 ms':>7}")
    for mode, r in sat.items():
        ratios = paired[mode]
        print(f"{mode:<14} {r.rps:>8.0f} {r.rps / base.rps:>8.3f} "
              f"{statistics.median(ratios):>7.3f} {min(ratios):>5.2f}-{max(ratios):<5.2f} "
              f"{r.cpu_us:>11.1f} {r.cpu_us - base.cpu_us:>+8.1f} {r.p99_ms:>7.2f}")
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
    print("\nevents capture queued / wrote / dropped (queue full), all rounds:")
    for mode, rs in runs.items():
        counts = [r.logged for r in rs if r.logged is not None]
        if counts:
            emitted, written, dropped = (sum(c) for c in zip(*counts, strict=True))
            print(f"  {mode:<14} {emitted} / {written} / {dropped}")
    if "uvicorn-log" not in sat:
        return
    uv_loss = 1 - statistics.median(paired["uvicorn-log"])
    uv_cpu = sat["uvicorn-log"].cpu_us - base.cpu_us
    print("\ncost against uvicorn's access log (paired throughput loss; added CPU per request):")
    for mode in (m for m in ("failures", "access", *WRITER_MODES) if m in sat):
        loss = 1 - statistics.median(paired[mode])
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


def spread(counts: list[Counted]) -> tuple[Counted, float]:
    """The mean of `counts`, and half the range of their figures for the app's process."""
    apps = [c.app for c in counts]
    mean = Counted(*(statistics.mean(column) for column in zip(*counts, strict=True)))
    return mean, (max(apps) - min(apps)) / 2


def instructions_report(modes: list[str], requests: int, layouts: int) -> None:
    """Instructions per request under callgrind, served and in process, against `none`: the
    mean over `layouts` (and half their range)."""
    if shutil.which("valgrind") is None:
        print("\ninstructions per request: skipped, valgrind is not installed "
              "(apt-get install valgrind)")
        return
    runs: dict[str, list[tuple[Counted, ...]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for layout in range(layouts):
            for mode, rows in runs.items():
                served = instructions_served(mode, requests, Path(tmp), layout)
                rows.append((served,) if mode == "uvicorn-log" else
                            (served, instructions_in_process(mode, requests, Path(tmp), layout)))
    figures = {m: [spread(list(c)) for c in zip(*rows, strict=True)] for m, rows in runs.items()}
    print(f"\ninstructions per request (callgrind, user space, {requests} requests after warm-up, "
          f"mean of {layouts} layouts +- half their range) in the app's process, and in the "
          "writer process:")
    print(f"{'mode':<14} {'served':>15} {'vs none':>7} {'in process':>15} {'vs none':>7}   "
          "writer (served / in process)")
    for mode, columns in figures.items():
        line = f"{mode:<14}"
        for (figure, half), (bare, _) in zip(columns, figures["none"], strict=False):
            line += (f" {figure.app / 1e3:>7.1f}k +-{half / 1e3:<4.1f} "
                     f"{figure.app / bare.app - 1:>+7.1%}")
        if columns[0][0].children:
            line += "   " + " / ".join(f"{c.children / 1e3:.1f}k" for c, _ in columns)
        print(line)


def wall_clock(modes: list[str], args: argparse.Namespace) -> None:
    """The wrk runs, interleaved in rounds, and the in-process CPU figures."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    cores = Cores.pick(not args.no_pin)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        script = workdir / "paced.lua"
        script.write_text(PACED_LUA)
        rate = args.rate
        if rate is None:
            with server("none", workdir, cores.server) as (pid, url):
                rate = args.load * saturate(pid, url, args.seconds, args.connections,
                                            cores.client).rps
        runs: dict[str, list[Result]] = {m: [] for m in modes}
        for round_ in range(args.rounds):
            for mode in modes if round_ % 2 == 0 else modes[::-1]:
                runs[mode].append(measure(mode, args, rate, script, workdir, cores))
    report(runs, rate, args, cores)
    in_process_report([m for m in modes if m not in ("uvicorn-log", *PINNING_ONLY)], args.rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="0: no wrk runs")
    parser.add_argument("--load", type=float, default=0.5,
                        help="paced offered load, as a fraction of the bare saturated rate")
    parser.add_argument("--rate", type=float, help="paced offered load in req/s (no calibration)")
    parser.add_argument("--paced-connections", type=int, default=16)
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated subset of " + ", ".join(MODES))
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin wrk and the server to CPUs of their own")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per request under callgrind (valgrind)")
    parser.add_argument("--requests", type=int, default=2000,
                        help="requests counted per mode by --instructions")
    parser.add_argument("--layouts", type=int, default=3,
                        help="memory layouts --instructions counts each mode in")
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--in-process", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.workdir)
        return
    if args.in_process:
        count_in_process(args.in_process, args.requests, args.workdir)
        return
    modes = ["none", *(m for m in args.modes.split(",") if m in MODES and m != "none")]
    if args.rounds > 0:
        wall_clock(modes, args)
    if args.instructions:
        instructions_report([m for m in modes if m not in PINNING_ONLY], args.requests,
                            args.layouts)


if __name__ == "__main__":
    main()
