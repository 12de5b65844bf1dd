"""Helpers of the forwarding tests: a collector forwarding to given destinations, a restartable
rsyslogd, and a scripted local HTTP receiver."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from apiwatch.collector.runtime import Collector
from apiwatch.config import Config, LedgerConfig
from apiwatch.events import make_event

RSYSLOG_CONF = """\
global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="forward")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="forward") {{
  action(type="omfile" file="{out}" template="raw")
}}
"""
#: Fast retries so that a test sees several attempts in well under a second.
FAST = {"poll_seconds": 0.05, "retry_base_seconds": 0.05, "retry_max_seconds": 0.2}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], what: str, timeout: float = 8.0) -> None:
    """Poll `check` until it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@contextmanager
def collector(data_dir: Path, *destinations: dict[str, Any]) -> Iterator[Collector]:
    """A collector with detection (so forwarding) on, the catalogue off, and `destinations`."""
    config = Config(data_dir=data_dir, alerts={"catalogue": False},
                    ledger=LedgerConfig(durability="none"),
                    forward=[{**FAST, **d} for d in destinations])
    opened = Collector.open(config, detect=True)
    try:
        yield opened
    finally:
        opened.close()


def record(collector: Collector, count: int, start: int = 0) -> list[str]:
    """Record `count` login events in one ledger append (so the forwarder sees them together,
    whenever it polls); their event ids, in ledger order."""
    events = [make_event("authn_login_success", {"user.name": f"u{n}"})
              for n in range(start, start + count)]
    first = collector.pipeline.ingest("app", events).first_index
    assert first is not None
    records = collector.pipeline.ledger.read_range(first, first + count)
    return [json.loads(record)["event.id"] for record in records]


class Rsyslog:
    """Debian's rsyslogd in the foreground: imtcp on one port, every raw message to a file."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.out = folder / "received.log"
        (folder / "work").mkdir()
        self.conf = folder / "rsyslog.conf"
        self.conf.write_text(RSYSLOG_CONF.format(work=folder / "work", port=self.port,
                                                 out=self.out))
        self.pidfile = folder / "rsyslogd.pid"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it listens."""
        binary = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        self.process = subprocess.Popen([binary, "-n", "-f", str(self.conf), "-i",
                                         str(self.pidfile)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._listening, "rsyslogd to listen")

    def _listening(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, "rsyslogd exited"
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        """Stop it (SIGTERM: it writes what it received, then exits)."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def lines(self) -> list[bytes]:
        """The raw messages written so far."""
        return self.out.read_bytes().split(b"\n")[:-1] if self.out.exists() else []


@dataclass
class Receiver:
    """A local HTTP server recording every request and answering from a script."""

    #: Answers (status, JSON body) for the next requests; when empty, `default` answers.
    script: list[tuple[int, Any]] = field(default_factory=list)
    default: Callable[[bytes], Any] = lambda body: {}
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Serve on a free port; yield the base URL."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                status, answer = (receiver.script.pop(0) if receiver.script
                                  else (200, receiver.default(body)))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
