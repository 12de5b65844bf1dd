"""`apiwatch serve` with its syslog receiver: what the receiver counts is in /metrics."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from collector_harness import Collector, client, free_port, shut, write_config

SSHD = b"<38>Mar  3 10:00:01 web1 sshd[411]: Failed password for root from 203.0.113.9 port 22 ssh2"


def _send(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)


def _scrape_until(http_url: str, lines: tuple[str, ...]) -> str:
    """/metrics once it shows every one of `lines` (the receiver stores in the background),
    or after 20 s."""
    with client(http_url) as http:
        deadline = time.monotonic() + 20
        while True:
            text = http.get("/metrics").text
            if all(line in text for line in lines) or time.monotonic() > deadline:
                return text
            time.sleep(0.05)


def test_syslog_counters_are_exposed(tmp_path: Path) -> None:
    """Messages stored, a connection closed for broken framing, and nothing lost, each an
    `apiwatch_syslog_*_total` counter labelled with the receiver's source name."""
    port, syslog_port = free_port(), free_port()
    config = write_config(tmp_path / "apiwatch.toml", port, ["api"], {}, "durable")
    with config.open("a") as fh:
        fh.write(f'[syslog]\ntcp = "127.0.0.1:{syslog_port}"\nsource = "edge"\n')
    collector = Collector(tmp_path, port, ["--config", str(config)])
    collector.start()
    try:
        _send(syslog_port, b"%d %s%d %s" % (len(SSHD), SSHD, len(SSHD), SSHD))
        _send(syslog_port, b"garbage without framing\n")
        expected = (
            'apiwatch_syslog_messages_total{source="edge"} 2.0',
            'apiwatch_syslog_events_total{source="edge"} 2.0',
            'apiwatch_syslog_connections_total{source="edge"} 2.0',
            'apiwatch_syslog_framing_errors_total{source="edge"} 1.0',
            'apiwatch_syslog_lost_messages_total{source="edge"} 0.0',
            'apiwatch_syslog_store_failures_total{source="edge"} 0.0',
        )
        text = _scrape_until(collector.url, expected)
        for line in expected:
            assert line in text, text
        assert "# HELP apiwatch_syslog_lost_messages_total Messages received but not stored" in text
        assert collector.stop() == 0
    finally:
        shut(collector)
