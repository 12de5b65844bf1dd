"""Test helpers (not tests): real receivers on 127.0.0.1 for webhooks, SMTP and syslog."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson

from apiwatch.alerts import AlertsConfig
from apiwatch.collector.runtime import Collector
from apiwatch.config import Config
from apiwatch.events import Event, make_event
from apiwatch.formats.ecs import encode_ecs
from apiwatch.signing import sign_batch

SECRET = "webhook-secret-for-tests"
READ_TOKEN = "read-token-for-tests-0123456789"
SOURCE_TOKEN = "tok-app-0123456789abcdef"


class Delivery:
    """One request the webhook receiver got."""

    def __init__(self, at: float, path: str, headers: dict[str, str], body: bytes) -> None:
        self.at, self.path, self.headers, self.body = at, path, headers, body

    @property
    def alert(self) -> dict[str, Any]:
        """The alert object of a webhook payload."""
        payload: dict[str, Any] = orjson.loads(self.body)
        return payload["alert"]  # type: ignore[no-any-return]

    def signed_by(self, secret: str) -> bool:
        """Whether the signature header is HMAC-SHA256(secret, timestamp "." body)."""
        stamp = self.headers["x-apiwatch-timestamp"]
        mac = hmac.new(secret.encode(), stamp.encode() + b"." + self.body, hashlib.sha256)
        return hmac.compare_digest("sha256=" + mac.hexdigest(),
                                   self.headers["x-apiwatch-signature"])


class WebhookReceiver:
    """A real HTTP server; answers `status` (200 unless a test makes it fail)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.refused = 0
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if receiver.status != 200:
                    receiver.refused += 1
                else:
                    receiver.deliveries.append(Delivery(
                        time.time(), self.path, {k.lower(): v for k, v in self.headers.items()},
                        body))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, predicate: Callable[[list[Delivery]], bool], timeout: float = 10) -> bool:
        """Poll until `predicate(deliveries)` holds; whether it did before `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.deliveries):
                return True
            time.sleep(0.01)
        return predicate(self.deliveries)


@contextmanager
def webhook() -> Iterator[WebhookReceiver]:
    """A running webhook receiver."""
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> bool:
    """Poll `predicate` until it holds or `timeout` passes; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def channel(url: str, name: str = "hook", **extra: Any) -> dict[str, Any]:
    """A webhook channel table."""
    return {"name": name, "type": "webhook", "url": url, "secret": SECRET, **extra}


def alerts_table(*channels: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """An `[alerts]` table with fast retries."""
    return {"retry_base_seconds": 0.05, "retry_max_seconds": 0.2, **settings,
            "channels": list(channels)}


def open_collector(folder: Any, alerts: dict[str, Any]) -> Collector:
    """A collector on `folder` with detection on (non-durable ledger: tests need no fsync)."""
    config = Config(data_dir=folder, sanitize={"fingerprint_key": "5a" * 32}, alerts=alerts)
    config.ledger.durability = "none"
    config.ledger.origin = "apiwatch/test"
    return Collector.open(config, detect=True)


def failed_login(ip: str, ts_ns: int | None = None, user: str = "alice") -> Event:
    """One `authn_login_fail` from `ip`."""
    return make_event("authn_login_fail", {"source.ip": ip, "user.name": user},
                      timestamp_ns=ts_ns)


def settings(**values: Any) -> AlertsConfig:
    """Validated settings from keyword values."""
    return AlertsConfig.from_mapping(values)



class Serve:
    """`apiwatch serve` as a subprocess in `folder`, restartable on the same port and data."""

    def __init__(self, folder: Path, alerts_toml: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.config = folder / "apiwatch.toml"
        self.config.write_text("\n".join([
            'data_dir = "data"', "[server]", f'listen = "127.0.0.1:{self.port}"',
            f'read_token = "{READ_TOKEN}"', "[ledger]", 'origin = "apiwatch/test"',
            "[sanitize]", f'fingerprint_key = "{"5a" * 32}"',
            "[sources.app]", f'token = "{SOURCE_TOKEN}"', alerts_toml, ""]))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until /healthz answers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("APIWATCH_")}
        log = (self.folder / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from apiwatch.cli import main; main()", "serve",
             "--config", str(self.config)], stdout=log, stderr=log, env=env, cwd=self.folder)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.folder / "serve.log").read_text()
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("apiwatch serve did not come up")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, if still running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def post_events(http: httpx.Client, events: list[Event]) -> None:
    """POST a signed NDJSON batch from source `app`; asserts it was accepted."""
    body = b"".join(encode_ecs(e) for e in events)
    answer = http.post("/v1/events", content=body, headers=sign_batch(SOURCE_TOKEN, body))
    assert answer.status_code == 200, answer.text
