"""What capture does when things break: collector down, spool full, the app killed with -9."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from capture_e2e import TOKEN, Collector, free_port, uvicorn_server, wait_for

from apiwatch.capture.asgi import ApiwatchMiddleware
from apiwatch.capture.config import Capture
from apiwatch.capture.sinks import SpoolSink

CHILD = Path(__file__).with_name("capture_child_app.py")


async def deny(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 403, "headers": []})
    await send({"type": "http.response.body", "body": b"denied"})


def make_capture(collector: Collector, spool: Path, **options: Any) -> Capture:
    capture = Capture("fail-api", collector=collector.url, token=TOKEN, spool_dir=spool,
                      flush_interval=0.02, ship_interval=0.02, fsync=False, **options)
    assert capture.shipper is not None
    capture.shipper.backoff_max = 0.2  # retry quickly once the collector is back
    return capture


def seqs(collector: Collector, query: str = "event.action:authz_fail") -> list[int]:
    return [int(e["apiwatch.seq"]) for e in collector.events(query)]


def spool_seqs(spool: Path) -> list[int]:
    """Sequence numbers held in the spool's segments, in file order."""
    events = [
        orjson.loads(line)
        for path in sorted(spool.glob("*.*"))
        if path.suffix in (".active", ".jsonl")
        for line in path.read_bytes().splitlines()
    ]
    return [int(e["apiwatch.seq"]) for e in events if "apiwatch.seq" in e]  # not drop reports


def deny_requests(url: str, count: int) -> None:
    with httpx.Client() as client:
        for _ in range(count):
            assert client.get(url + "/deny").status_code == 403


def test_collector_down_spools_then_delivers_in_order_exactly_once(tmp_path: Path) -> None:
    """With the collector down requests still succeed and the spool grows within its cap; once
    it is up every event arrives once, in sequence order."""
    collector = Collector(tmp_path / "data")
    capture = make_capture(collector, tmp_path / "spool", spool_max_bytes=1024 * 1024)
    assert capture.spool is not None
    try:
        with uvicorn_server(ApiwatchMiddleware(deny, capture)) as url:
            deny_requests(url, 60)
            assert capture.emitter.flush(5.0)
            assert 0 < capture.spool.size_bytes <= capture.spool.max_bytes
            shipper = capture.shipper
            assert shipper is not None
            wait_for(lambda: shipper.stats.retries > 0, what="a refused delivery attempt")
            collector.start()
            wait_for(lambda: len(seqs(collector)) >= 60, what="60 events")
            assert seqs(collector) == list(range(1, 61))
            assert collector.source()["duplicates"] == 0
            assert collector.source()["gaps"] == 0
    finally:
        capture.close()
        collector.stop()


def test_spool_full_drops_counts_and_reports(tmp_path: Path) -> None:
    """Past the spool's cap events are dropped and counted, and a `log_events_dropped` event
    with that count reaches the collector once there is room again."""
    collector = Collector(tmp_path / "data")
    capture = make_capture(collector, tmp_path / "spool", spool_max_bytes=8 * 1024)
    sink = capture.emitter.sinks[0]
    assert isinstance(sink, SpoolSink)
    try:
        with uvicorn_server(ApiwatchMiddleware(deny, capture)) as url:
            deny_requests(url, 40)
            # The middleware records an exchange after the response went out: wait for the last.
            wait_for(lambda: capture.emitter.stats.emitted == 40, what="40 recorded exchanges")
            assert capture.emitter.flush(5.0)
            dropped = sink.dropped
            spooled = spool_seqs(tmp_path / "spool")
            kept = len(spooled)
            assert kept + dropped == 40
            assert 0 < kept < 40
            collector.start()
            wait_for(lambda: len(seqs(collector)) >= kept, what="the spooled events")
            deny_requests(url, 1)  # the first write after space returned carries the report

            def reported() -> int:
                return sum(e["apiwatch.dropped"]
                           for e in collector.events("event.action:log_events_dropped"))

            # A report may also have gone into the spool between two overflowing batches.
            wait_for(lambda: reported() == dropped, what="drop reports of every dropped event")
            assert sink.dropped == dropped
            wait_for(lambda: len(seqs(collector)) == kept + 1, what="the new event")
            assert seqs(collector) == [*spooled, 41]
    finally:
        capture.close()
        collector.stop()


@contextmanager
def child_app(collector: Collector, spool: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(CHILD), collector.url, TOKEN, str(spool),
                                str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(url + "/deny").status_code == 403, what="the child app")
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)


def test_kill_9_loses_at_most_the_queue_and_shows_as_a_gap(tmp_path: Path) -> None:
    """Events still on the emitter's queue at kill -9 are lost, and the collector records the
    loss as a sequence gap that starts right after the last delivered event."""
    collector = Collector(tmp_path / "data")
    collector.start()
    spool = tmp_path / "spool"
    try:
        with child_app(collector, spool) as (process, url):
            deny_requests(url, 9)  # with the probe above: seqs 1..10 delivered
            wait_for(lambda: len(seqs(collector)) == 10, what="10 delivered events")
            assert httpx.get(url + "/hold").status_code == 200
            deny_requests(url, 25)  # queued (or in the stuck batch): never reach the spool
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        with child_app(collector, spool) as (_, url):
            deny_requests(url, 4)
            wait_for(lambda: len(seqs(collector)) == 15, what="events after the restart")
        delivered = seqs(collector)
        assert delivered[:10] == list(range(1, 11))
        assert not set(delivered) & set(range(11, 36))  # the 25 queued events are lost
        gap = wait_for(lambda: collector.events("event.action:source_sequence_gap"),
                       what="the gap event")
        assert len(gap) == 1
        # The restart resumes past the reserved block, so the gap covers the lost events.
        assert gap[0]["apiwatch.gap.first"] == 11
        assert gap[0]["apiwatch.gap.last"] == delivered[10] - 1 >= 35
        assert collector.source()["gaps"] == 1
    finally:
        collector.stop()
