"""The writer process (`Capture(writer_process=True)`): events leave the app's GIL intact."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
from capture_e2e import TOKEN, Collector, wait_for

from apiwatch.capture.asgi import ApiwatchMiddleware
from apiwatch.capture.config import Capture
from apiwatch.capture.sinks import JsonLinesFileSink
from apiwatch.capture.writer import WRITER_NICE

CHILD = Path(__file__).with_name("writer_child_app.py")


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def serve(app: Any, paths: list[str]) -> None:
    """Call the ASGI app once per path, as a server would."""
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    async def run() -> None:
        for path in paths:
            scope = {"type": "http", "method": "GET", "path": path, "client": ("192.0.2.1", 1),
                     "headers": [(b"user-agent", b"test/1"), (b"x-request-id", path[1:].encode())]}
            await app(scope, receive, send)

    asyncio.run(run())


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def writer_capture(path: Path) -> Capture:
    return Capture("writer-api", sinks=[JsonLinesFileSink(path)], access_log=True,
                   writer_process=True, flush_interval=0.01)


def test_writer_process_writes_every_event_in_order(tmp_path: Path) -> None:
    """With a writer process the sinks are written by a child process: every request's event
    arrives complete and in order, `flush` waits for it, and `close` ends the child."""
    capture = writer_capture(tmp_path / "events.jsonl")
    writer = capture.emitter.writer
    assert writer is not None
    assert writer.pid != os.getpid()
    paths = [f"/r{n}" for n in range(1200)]
    serve(ApiwatchMiddleware(ok, capture), paths)
    capture.log.login_failure("alice", reason="bad_password")
    assert capture.emitter.flush(10.0)
    assert capture.emitter.stats.written == 1201
    capture.close()
    events = lines(tmp_path / "events.jsonl")
    assert [e["url.path"] for e in events[:-1]] == paths
    assert events[0]["http.request.id"] == "r0"
    assert events[0]["user_agent.original"] == "test/1"
    assert events[0]["service.name"] == "writer-api"
    assert events[-1]["event.action"] == "authn_login_fail"
    assert wait_for(lambda: _exited(writer.pid), what="the writer process to exit")


def test_writer_process_runs_below_the_app(tmp_path: Path) -> None:
    """The writer gives way to the app where they share a core: it runs WRITER_NICE steps
    below the app's priority, and the app's own priority is left alone."""
    app_nice = os.getpriority(os.PRIO_PROCESS, 0)
    capture = writer_capture(tmp_path / "events.jsonl")
    writer = capture.emitter.writer
    assert writer is not None
    expected = min(app_nice + WRITER_NICE, 19)
    try:
        assert wait_for(lambda: os.getpriority(os.PRIO_PROCESS, writer.pid) == expected,
                        what="the writer to lower its priority")
        assert os.getpriority(os.PRIO_PROCESS, 0) == app_nice
    finally:
        capture.close()


def _exited(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_when_the_writer_process_dies_the_emitter_thread_takes_over(tmp_path: Path) -> None:
    """If the writer process is killed, later events still reach the sinks, written by the
    emitter's thread (a process forked while serving would inherit the app's connections)."""
    capture = writer_capture(tmp_path / "events.jsonl")
    writer = capture.emitter.writer
    assert writer is not None
    app = ApiwatchMiddleware(ok, capture)
    serve(app, ["/before"])
    assert capture.emitter.flush(10.0)
    os.kill(writer.pid, signal.SIGKILL)
    wait_for(lambda: _exited(writer.pid) or _zombie(writer.pid), what="the writer to die")
    serve(app, ["/after1", "/after2"])
    assert capture.emitter.flush(10.0)
    capture.close()
    assert not writer.alive
    paths = [e["url.path"] for e in lines(tmp_path / "events.jsonl")]
    assert paths == ["/before", "/after1", "/after2"]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_app_killed_9_writer_still_writes_what_it_was_given(tmp_path: Path) -> None:
    """When the app dies by kill -9, the writer process still writes every batch the app had
    handed it, then exits: only the emitter's in-memory queue can be lost."""
    events, marker = tmp_path / "events.jsonl", tmp_path / "marker"
    app = subprocess.run([sys.executable, str(CHILD), str(events), str(marker), "3000"],
                         check=False, timeout=60)
    assert app.returncode == -signal.SIGKILL
    at_kill, writer_pid = (int(v) for v in marker.read_text().split())
    assert at_kill < 3000  # the slow sink was still working when the app died
    wait_for(lambda: _exited(writer_pid) or _zombie(writer_pid), what="the writer to finish")
    assert [e["url.path"] for e in lines(events)] == [f"/items/{n}" for n in range(3000)]


def test_writer_process_spools_and_ships_in_order(tmp_path: Path) -> None:
    """With a collector, the writer process fills the spool and the app's shipper sends it:
    every event arrives once, in sequence order, with no gap."""
    collector = Collector(tmp_path / "data")
    collector.start()
    capture = Capture("writer-api", collector=collector.url, token=TOKEN,
                      spool_dir=tmp_path / "spool", writer_process=True, flush_interval=0.01,
                      ship_interval=0.02, fsync=False)
    try:
        serve(ApiwatchMiddleware(deny, capture), [f"/d{n}" for n in range(30)])
        wait_for(lambda: len(collector.events("event.action:authz_fail")) == 30,
                 what="30 events at the collector")
        events = collector.events("event.action:authz_fail")
        assert sorted(int(e["apiwatch.seq"]) for e in events) == list(range(1, 31))
        assert collector.source()["gaps"] == 0
        assert collector.source()["duplicates"] == 0
    finally:
        capture.close()
        collector.stop()


async def deny(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 403, "headers": []})
    await send({"type": "http.response.body", "body": b"no"})


# Run in a fresh interpreter: a test process may still hold other tests' threads, and whether
# threads run decides the default.
DEFAULTS = """
import json, sys, threading
from pathlib import Path
from apiwatch.capture.config import Capture
from apiwatch.capture.sinks import JsonLinesFileSink
from apiwatch.capture.writer import WRITER_NICE

def writes_from_a_child(name, **options):
    capture = Capture("api", sinks=[JsonLinesFileSink(Path(sys.argv[1]) / name)], **options)
    capture.log.login_failure("alice", reason="bad_password")
    assert capture.emitter.flush(10.0)
    capture.close()
    assert capture.writer_process == (capture.emitter.writer is not None)
    return capture.writer_process

seen = {"access": writes_from_a_child("access", access_log=True),
        "failures": writes_from_a_child("failures")}
threading.Thread(target=threading.Event().wait, daemon=True).start()
seen["access, threads running"] = writes_from_a_child("threads", access_log=True)
seen["forced, threads running"] = writes_from_a_child("forced", writer_process=True)
seen["access, disabled"] = writes_from_a_child("disabled", access_log=True,
                                               writer_process=False)
print(json.dumps(seen))
"""


def test_access_log_mode_writes_from_a_writer_process_by_default(tmp_path: Path) -> None:
    """`Capture(access_log=True)` created at import has a writer process; failures-only mode
    and a Capture created while other threads run write from the emitter's thread; True or
    False decides either way. Every one of them writes its events."""
    out = subprocess.run([sys.executable, "-c", DEFAULTS, str(tmp_path)], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    assert orjson.loads(out) == {
        "access": True,
        "failures": False,
        "access, threads running": False,
        "forced, threads running": True,
        "access, disabled": False,
    }
    for name in ("access", "failures", "threads", "forced", "disabled"):
        assert [e["event.action"] for e in lines(tmp_path / name)] == ["authn_login_fail"]
