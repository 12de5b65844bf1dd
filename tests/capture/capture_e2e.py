"""Helpers of the capture tests: a running `apiwatch serve`, real servers for apps, a list sink.

Imported by the test modules beside it (they share its directory on `sys.path`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from apiwatch.capture.config import Capture
from apiwatch.events import Event

SOURCE = "app"
TOKEN = "aws_capture-test-token-0123456789"
READ_TOKEN = "read-token-0123456789"


class ListSink:
    """Keeps every batch in memory, for tests that look at the events themselves."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def write(self, events: Sequence[Event]) -> None:
        """Keep the batch."""
        self.events.extend(events)

    def close(self) -> None:
        """Nothing to release."""


def memory_capture(**options: Any) -> tuple[Capture, ListSink]:
    """A Capture writing to a ListSink only, draining quickly."""
    sink = ListSink()
    return Capture("test-api", instance="node-1", sinks=[sink], flush_interval=0.01,
                   **options), sink


def drained(capture: Capture, sink: ListSink) -> list[Event]:
    """Every event emitted so far, once the emitter delivered them."""
    assert capture.emitter.flush(5.0)
    return sink.events


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Collector:
    """`apiwatch serve` as a subprocess on a free port, with one source and a read token."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data.with_name(data.name + ".log")

    def start(self) -> None:
        """Start the collector and wait until it answers /healthz."""
        env = {
            **os.environ,
            f"APIWATCH_SOURCES_{SOURCE.upper()}_TOKEN": TOKEN,
            "APIWATCH_SERVER_READ_TOKEN": READ_TOKEN,
            "APIWATCH_LEDGER_DURABILITY": "none",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from apiwatch.cli import main; main()", "serve",
             "--data", str(self.data),
             "--listen", f"127.0.0.1:{self.port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self._drain = threading.Thread(target=self._keep_log, args=(self.process,), daemon=True)
        self._drain.start()
        wait_for(self._healthy, what="collector")

    def _keep_log(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        with process.stderr, self.log.open("ab") as out:
            for line in process.stderr:
                out.write(line)
                out.flush()

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"collector exited: {self.log.read_text()[-2000:]}")
        return httpx.get(self.url + "/healthz").status_code == 200

    def stop(self) -> None:
        """Stop the collector (SIGTERM) and wait for it."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(20)
            self._drain.join(5)
            self.process = None

    def events(self, query: str = "") -> list[Event]:
        """Stored events of the app's source matching `query`, oldest first."""
        q = f"apiwatch.source:{SOURCE} {query}".strip()
        response = httpx.get(
            self.url + "/v1/events",
            params={"q": q, "order": "oldest", "limit": "10000"},
            headers={"Authorization": f"Bearer {READ_TOKEN}"},
        )
        response.raise_for_status()
        return [item["event"] for item in response.json()["events"]]

    def source(self) -> dict[str, Any]:
        """The app source's status from GET /v1/sources."""
        response = httpx.get(
            self.url + "/v1/sources", headers={"Authorization": f"Bearer {READ_TOKEN}"}
        )
        response.raise_for_status()
        status: dict[str, Any] = response.json()["sources"][SOURCE]
        return status


@contextmanager
def running_collector(data: Path) -> Iterator[Collector]:
    """A started Collector, stopped on exit."""
    collector = Collector(data)
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread on a free port; yields its base URL."""
    import uvicorn  # noqa: PLC0415 - only the tests that serve ASGI need it

    port = free_port()
    # uvicorn's own proxy_headers would rewrite the peer from X-Forwarded-For sent to
    # 127.0.0.1 before capture sees it; the trusted-proxy policy is capture's to apply.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off", proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="uvicorn")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def waitress_server(app: Any) -> Iterator[str]:
    """Serve a WSGI app with waitress in a thread on a free port; yields its base URL."""
    from waitress.server import create_server  # noqa: PLC0415

    server = create_server(app, host="127.0.0.1", port=free_port(), threads=2,
                           clear_untrusted_proxy_headers=False)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        thread.join(10)
