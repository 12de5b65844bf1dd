"""Test harness (not tests): a real `apiwatch serve` subprocess on a free port, and clients."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from apiwatch.events import make_event
from apiwatch.formats.ecs import encode_ecs
from apiwatch.signing import sign_batch

READ_TOKEN = "read-token-for-tests-0123456789"
FINGERPRINT_KEY = "5a" * 32
#: The server options of the functional tests: small limits, a slow rate, fast checkpoints.
SMALL_LIMITS = {
    "max_event_bytes": 4096,
    "max_batch_bytes": 65536,
    "max_batch_events": 200,
    "max_clock_skew_seconds": 300,
    "rate_limit_events_per_second": 5,
}


def token_of(source: str) -> str:
    """The token the test config gives `source`."""
    return f"tok-{source}-0123456789abcdef"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def write_config(
    path: Path, port: int, sources: list[str], server: Mapping[str, Any], durability: str
) -> Path:
    """A collector config: data beside it, the given server options and sources."""
    lines = [
        'data_dir = "data"',
        "[server]",
        f'listen = "127.0.0.1:{port}"',
        f'read_token = "{READ_TOKEN}"',
        *(f"{key} = {_toml(value)}" for key, value in server.items()),
        "[ledger]",
        'origin = "apiwatch/test"',
        "checkpoint_every_seconds = 1.0",
        f'durability = "{durability}"',
        "[sanitize]",
        f'fingerprint_key = "{FINGERPRINT_KEY}"',
    ]
    for name in sources:
        lines += [f"[sources.{name}]", f'token = "{token_of(name)}"']
    path.write_text("\n".join(lines) + "\n")
    return path


class Collector:
    """One `apiwatch serve` subprocess in `folder`; restartable on the same port and data."""

    def __init__(
        self, folder: Path, port: int, args: list[str], tls_ca: Path | None = None
    ) -> None:
        self.folder = folder
        self.port = port
        self.args = args
        self.url = f"{'https' if tls_ca else 'http'}://127.0.0.1:{port}"
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(tls_ca)) if tls_ca else True
        )
        self.data = folder / "data"
        self.log = folder / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until /healthz answers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("APIWATCH_")}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from apiwatch.cli import main; main()",
                 "serve", *self.args],
                stdout=log, stderr=log, env=env, cwd=self.folder,
            )
        try:
            self._wait_until_healthy()
        except BaseException:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def _wait_until_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"apiwatch serve exited: {self.log.read_text()}")
            try:
                health = httpx.get(self.url + "/healthz", timeout=1, verify=self.verify)
                if health.status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        pytest.fail(f"apiwatch serve did not come up: {self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def launch(
    folder: Path,
    sources: list[str],
    server: Mapping[str, Any] | None = None,
    durability: str = "durable",
) -> Collector:
    """Write a config in `folder` and start a collector on a free port."""
    port = free_port()
    config = write_config(folder / "apiwatch.toml", port, sources, server or {}, durability)
    collector = Collector(folder, port, ["--config", str(config)])
    collector.start()
    return collector


def shut(collector: Collector) -> None:
    """Stop `collector` if it still runs."""
    if collector.proc is not None and collector.proc.poll() is None:
        collector.stop()


def ndjson(seqs: range | list[int], **fields: Any) -> bytes:
    """An NDJSON batch of http_request events numbered by `seqs`."""
    return b"".join(
        encode_ecs(make_event("http_request", {
            "url.path": "/orders", "http.request.method": "GET",
            "http.response.status_code": 200, "source.ip": "203.0.113.7",
            "apiwatch.seq": seq, **fields,
        }))
        for seq in seqs
    )


def client(url: str, peer: str = "127.0.0.1") -> httpx.Client:
    """An HTTP client whose connections come from the loopback address `peer`."""
    transport = httpx.HTTPTransport(local_address=peer)
    return httpx.Client(base_url=url, transport=transport, timeout=30)


def post(
    http: httpx.Client,
    source: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST a batch signed with `source`'s token."""
    headers = sign_batch(token_of(source), body, timestamp)
    headers.update(extra or {})
    return http.post("/v1/events", content=body, headers=headers)


def query(http: httpx.Client, q: str) -> list[dict[str, Any]]:
    """The events matching `q` (up to 1000), newest first, read with the read token."""
    answer = http.get(
        "/v1/events", params={"q": q, "limit": "1000"},
        headers={"Authorization": f"Bearer {READ_TOKEN}"},
    )
    assert answer.status_code == 200, answer.text
    return [item["event"] for item in answer.json()["events"]]
