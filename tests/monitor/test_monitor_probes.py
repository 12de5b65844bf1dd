"""Probes against real local HTTP(S) servers: each outcome gives its event and its alert."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from apiwatch.config import Config, load_config
from apiwatch.detect import Engine, load_catalogue
from apiwatch.errors import ConfigError
from apiwatch.events import Event
from apiwatch.monitor.probes import Probe, ProbeScheduler, parse_probes, run_probe
from tls_support import self_signed

#: Set to let the requests waiting at `/hang` answer.
RELEASE_HUNG = threading.Event()


class Handler(BaseHTTPRequestHandler):
    """`/health` answers `{"status": "ok"}`; `/slow` the same after 0.3 s; `/hang` the same
    once RELEASE_HUNG is set; others 404."""

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.3)
        if self.path == "/hang":
            RELEASE_HUNG.wait(30)
        status = 200 if self.path in ("/health", "/slow", "/hang") else 404
        body = b'{"status": "ok"}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def _serve(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1; yields HOST:PORT."""
    yield from _serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTPS server whose self-signed certificate expires in 5 days; yields HOST:PORT."""
    folder: Path = tmp_path_factory.mktemp("tls")
    self_signed(folder, datetime.timedelta(days=5, hours=1))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield from _serve(server)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alerts(events: list[Event]) -> list[str]:
    engine = Engine(r for r in load_catalogue() if r.id.startswith("probe_"))
    return [a.rule for e in events for a in engine.process(dict(e))]


def test_up_is_success_and_quiet(http_server: str) -> None:
    """A healthy endpoint gives a successful result with status and duration, and no alert."""
    event = run_probe(Probe("health", f"http://{http_server}/health", body_regex='"ok"'))
    assert event["event.action"] == "probe_result"
    assert event["event.outcome"] == "success"
    assert event["http.response.status_code"] == 200
    assert event["event.duration"] > 0
    assert event["url.full"] == f"http://{http_server}/health"
    assert "apiwatch.probe.problem" not in event
    assert _alerts([event]) == []


def test_down_fails_and_alerts() -> None:
    """A closed port is `down` and raises probe_failure."""
    event = run_probe(Probe("health", f"http://127.0.0.1:{_closed_port()}/health"))
    assert event["event.outcome"] == "failure"
    assert event["apiwatch.probe.problem"] == "down"
    assert event["event.reason"].startswith("down")
    assert _alerts([event]) == ["probe_failure"]


def test_wrong_status_fails_and_alerts(http_server: str) -> None:
    """A 404 where 200 is expected is `wrong_status` and raises probe_failure."""
    event = run_probe(Probe("health", f"http://{http_server}/missing"))
    assert event["apiwatch.probe.problem"] == "wrong_status"
    assert event["http.response.status_code"] == 404
    assert _alerts([event]) == ["probe_failure"]


def test_wrong_body_fails_and_alerts(http_server: str) -> None:
    """A body that does not match the pattern is `body_mismatch` and raises probe_failure."""
    event = run_probe(Probe("health", f"http://{http_server}/health", body_regex="healthy"))
    assert event["apiwatch.probe.problem"] == "body_mismatch"
    assert _alerts([event]) == ["probe_failure"]


def test_slow_fails_and_alerts_on_repeat(http_server: str) -> None:
    """Answers over the latency threshold are `slow`; the second one raises probe_slow."""
    probe = Probe("health", f"http://{http_server}/slow", latency_ms=100)
    events = [run_probe(probe), run_probe(probe)]
    assert [e["apiwatch.probe.problem"] for e in events] == ["slow", "slow"]
    assert events[0]["event.duration"] >= 300_000_000
    assert _alerts(events) == ["probe_slow"]


def test_expiring_self_signed_certificate_alerts(https_server: str) -> None:
    """A self-signed certificate expiring in 5 days is reported (20-day default) and alerts."""
    event = run_probe(Probe("tls", f"https://{https_server}/health", verify_tls=False))
    assert event["apiwatch.probe.problem"] == "certificate_expiry"
    assert event["event.reason"] == "certificate expires in 5 days"
    assert _alerts([event]) == ["probe_certificate_expiry"]
    quiet = run_probe(Probe("tls", f"https://{https_server}/health", verify_tls=False,
                            cert_warning_days=3))
    assert quiet["event.outcome"] == "success"


def test_untrusted_certificate_with_verification_is_down(https_server: str) -> None:
    """With TLS verification on, a self-signed certificate makes the probe `down`."""
    event = run_probe(Probe("tls", f"https://{https_server}/health"))
    assert event["apiwatch.probe.problem"] == "down"


def test_scheduler_records_each_probe_until_stopped(http_server: str) -> None:
    """The scheduler runs every probe on start and hands each result to `record`."""
    got: list[Event] = []
    done = threading.Event()

    def record(event: Event) -> None:
        got.append(event)
        if len(got) >= 2:
            done.set()

    scheduler = ProbeScheduler([Probe("a", f"http://{http_server}/health"),
                                Probe("b", f"http://{http_server}/missing")], record)
    scheduler.start()
    assert done.wait(10)
    scheduler.stop()
    assert sorted(e["apiwatch.probe.name"] for e in got[:2]) == ["a", "b"]


def test_hung_probe_does_not_hold_up_the_others(http_server: str) -> None:
    """While one probe waits on an endpoint that does not answer, a probe with a short
    interval keeps producing results; the hung one records its own when the answer comes."""
    got: list[Event] = []
    fast_done = threading.Event()

    def record(event: Event) -> None:
        got.append(event)
        if sum(e["apiwatch.probe.name"] == "fast" for e in got) >= 5:
            fast_done.set()

    scheduler = ProbeScheduler([
        Probe("hung", f"http://{http_server}/hang", timeout_seconds=60),
        Probe("fast", f"http://{http_server}/health", interval_seconds=0.05),
    ], record)
    scheduler.start()
    try:
        assert fast_done.wait(20), "the fast probe was held up by the hung one"
        assert [e["apiwatch.probe.name"] for e in got].count("hung") == 0
    finally:
        RELEASE_HUNG.set()
        scheduler.stop()
    assert [e["apiwatch.probe.name"] for e in got].count("hung") == 1


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ([{"url": "http://x/"}], "missing key(s) name"),
        ([{"name": "a", "url": "ftp://x/"}], "not an http(s) URL"),
        ([{"name": "a", "url": "http://x/", "status": "200"}], "probes[0].status"),
        ([{"name": "a", "url": "http://x/", "colour": 1}], "unknown key(s) colour"),
        ([{"name": "a", "url": "http://x/"}] * 2, "unique"),
    ],
)
def test_bad_probe_config_is_refused(tables: list[dict[str, object]], message: str) -> None:
    """Invalid `[[probes]]` tables are ConfigErrors naming the problem."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        parse_probes(tables)


def test_probe_keys_are_overridden_by_position_from_the_environment(tmp_path: Path) -> None:
    """`APIWATCH_PROBES_<N>_<KEY>` sets a key of the N-th `[[probes]]` table, typed like the
    key, so one config file serves environments whose API lives at another URL."""
    path = tmp_path / "apiwatch.toml"
    path.write_text('[[probes]]\nname = "health"\nurl = "http://127.0.0.1:8000/health"\n')
    config = load_config(path, env={"APIWATCH_PROBES_0_URL": "https://api.example/health",
                                    "APIWATCH_PROBES_0_INTERVAL_SECONDS": "15",
                                    "APIWATCH_PROBES_0_VERIFY_TLS": "no"})
    (probe,) = parse_probes(config.probes)
    assert (probe.name, probe.url, probe.interval_seconds, probe.verify_tls) == (
        "health", "https://api.example/health", 15.0, False)


def test_collector_runs_configured_probes(http_server: str, tmp_path: Path) -> None:
    """A collector opened with detection records `probe_result` events and alerts on failure."""
    from apiwatch.collector.runtime import Collector  # noqa: PLC0415 - heavy, this test only

    config = Config(data_dir=tmp_path, probes=[
        {"name": "gone", "url": f"http://{http_server}/missing", "interval_seconds": 60.0},
    ])
    collector = Collector.open(config, detect=True)
    try:
        deadline = time.monotonic() + 10
        while collector.ledger.size == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b'"probe_result"' in collector.ledger.read(0)
    finally:
        collector.close()
