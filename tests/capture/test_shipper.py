"""The shipper sends spooled segments to a real HTTP server until each is acknowledged.

The server here is a scripted stand-in for the collector (stdlib http.server on 127.0.0.1): it
answers with the status codes the collector defines, so each shipper reaction can be forced.
The end-to-end tests against a running `apiwatch serve` live with the capture adapters.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from apiwatch.capture.shipper import Shipper
from apiwatch.capture.spool import Spool
from apiwatch.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_valid

TOKEN = "aws_test-token"


class Collector:
    """Answers each POST with the next scripted status, recording what it received."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]]] = []
        self.bodies: list[bytes] = []
        self.signatures_ok: list[bool] = []


@pytest.fixture
def collector() -> Iterator[tuple[Collector, str]]:
    state = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.signatures_ok.append(
                self.headers["Authorization"] == f"Bearer {TOKEN}"
                and signature_valid(
                    TOKEN, self.headers[TIMESTAMP_HEADER], body, self.headers[SIGNATURE_HEADER]
                )
            )
            status, headers = state.script.pop(0) if state.script else (200, {})
            state.bodies.append(body)
            reply = json.dumps({"accepted": body.count(b"\n"), "duplicates": 0}).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/v1/events"
    server.shutdown()
    server.server_close()


def spool_with(tmp_path: Path, *segments: list[bytes]) -> Spool:
    spool = Spool(tmp_path / "spool", segment_events=10_000)
    for lines in segments:
        spool.append(lines)
        spool.roll()
    return spool


def test_acknowledged_segments_are_signed_sent_in_order_and_deleted(
    tmp_path: Path, collector: tuple[Collector, str]
) -> None:
    """Each segment goes out signed, oldest first, and is deleted after the 200."""
    state, url = collector
    spool = spool_with(tmp_path, [b'{"n":1}'], [b'{"n":2}', b'{"n":3}'])
    shipper = Shipper(spool, url, TOKEN)
    for segment in spool.ready():
        assert shipper.ship(segment) is None
    assert state.bodies == [b'{"n":1}\n', b'{"n":2}\n{"n":3}\n']
    assert state.signatures_ok == [True, True]
    assert spool.ready() == []
    assert shipper.stats.events_sent == 3


def test_rate_limit_waits_for_retry_after_and_keeps_the_segment(
    tmp_path: Path, collector: tuple[Collector, str]
) -> None:
    """A 429 keeps the segment and asks to wait as long as Retry-After says."""
    state, url = collector
    state.script.append((429, {"Retry-After": "7"}))
    spool = spool_with(tmp_path, [b'{"n":1}'])
    shipper = Shipper(spool, url, TOKEN)
    assert shipper.ship(spool.ready()[0]) == 7.0
    assert len(spool.ready()) == 1


def test_server_errors_back_off_with_jitter_and_keep_the_segment(
    tmp_path: Path, collector: tuple[Collector, str]
) -> None:
    """5xx answers are retried later, with a delay bounded by the growing backoff cap."""
    state, url = collector
    state.script.extend([(503, {}), (503, {})])
    spool = spool_with(tmp_path, [b'{"n":1}'])
    shipper = Shipper(spool, url, TOKEN, backoff_base=0.5, backoff_max=60)
    first = shipper.ship(spool.ready()[0])
    second = shipper.ship(spool.ready()[0])
    assert first is not None
    assert 0 <= first <= 1.0
    assert second is not None
    assert 0 <= second <= 2.0
    assert shipper.stats.retries == 2
    assert len(spool.ready()) == 1


def test_collector_down_keeps_everything(tmp_path: Path) -> None:
    """Connection refused is a transient failure: nothing is deleted."""
    spool = spool_with(tmp_path, [b'{"n":1}'])
    shipper = Shipper(spool, "http://127.0.0.1:9/v1/events", TOKEN)
    assert shipper.ship(spool.ready()[0]) is not None
    assert "ConnectError" in shipper.stats.last_error
    assert len(spool.ready()) == 1


def test_permanent_refusal_is_quarantined_not_deleted(
    tmp_path: Path, collector: tuple[Collector, str]
) -> None:
    """A 400 moves the segment to rejected/ and counts it, and shipping goes on."""
    state, url = collector
    state.script.append((400, {}))
    spool = spool_with(tmp_path, [b'{"bad":1}'], [b'{"n":2}'])
    shipper = Shipper(spool, url, TOKEN)
    first, second = spool.ready()
    assert shipper.ship(first) is None
    assert shipper.ship(second) is None
    assert shipper.stats.quarantined == 1
    assert (spool.directory / "rejected" / first.name).exists()


def test_background_thread_ships_until_the_spool_is_empty(
    tmp_path: Path, collector: tuple[Collector, str]
) -> None:
    """Started in the background, the shipper rolls the active segment and sends it."""
    state, url = collector
    spool = Spool(tmp_path / "spool")
    spool.append([b'{"n":1}'])
    shipper = Shipper(spool, url, TOKEN, linger=0.05)
    shipper.start()
    try:
        for _ in range(200):
            if state.bodies:
                break
            threading.Event().wait(0.05)
    finally:
        shipper.stop()
    assert state.bodies == [b'{"n":1}\n']
