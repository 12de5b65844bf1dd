"""Debian's rsyslogd receives capture's SyslogSink over TCP and writes one line per event."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from capture_e2e import free_port, wait_for

from apiwatch.capture.config import Capture
from apiwatch.capture.sinks import SyslogSink

RSYSLOG_CONF = """\
global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="capture")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="capture") {{
  action(type="omfile" file="{out}" template="raw")
}}
"""


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """rsyslogd in the foreground with its own config: imtcp on a free port, omfile."""
    binary = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    port = free_port()
    out = tmp_path / "received.log"
    (tmp_path / "work").mkdir()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(RSYSLOG_CONF.format(work=tmp_path / "work", port=port, out=out))
    process = subprocess.Popen([binary, "-n", "-f", str(conf), "-i", str(tmp_path / "pid")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: process.poll() is None and _listening(port), what="rsyslogd")
        yield port, out
    finally:
        process.terminate()
        process.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_injection_payloads_arrive_neutralized_one_line_each(
    rsyslog: tuple[int, Path], shared_data: Path
) -> None:
    """Every injection payload sent as a login name arrives at rsyslog as exactly one line, with
    no raw CR, LF or NUL, tagged with its own case id."""
    port, out = rsyslog
    payloads: list[dict[str, Any]] = json.loads(
        (shared_data / "payloads" / "injection_payloads.json").read_text()
    )["payloads"]
    capture = Capture("syslog-api", sinks=[SyslogSink("127.0.0.1", port)], flush_interval=0.02)
    try:
        for case in payloads:
            capture.log.event("authn_login_fail", {"user.name": case["payload"],
                                                   "labels.case": case["id"]})
        assert capture.emitter.flush(5.0)
    finally:
        capture.close()
    assert capture.emitter.stats.sink_errors == 0

    def lines() -> list[bytes]:
        return out.read_bytes().split(b"\n")[:-1] if out.exists() else []

    wait_for(lambda: len(lines()) >= len(payloads), what="every event at rsyslog")
    received = lines()
    assert len(received) == len(payloads)
    for line, case in zip(received, payloads, strict=True):
        assert b"\r" not in line
        assert b"\x00" not in line
        # MSG is a UTF-8 BOM and the ECS JSON (RFC 5424 section 6.4).
        record = json.loads(line[line.index(b"\xef\xbb\xbf{") + 3:])
        assert record["labels.case"] == case["id"]
        assert record["event.action"] == "authn_login_fail"
