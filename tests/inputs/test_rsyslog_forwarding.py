"""rsyslog (the Debian package) forwarding to the receiver over TCP, in both RFC 6587 framings.

rsyslogd runs in the foreground with its own config: an imtcp input that the test feeds, and an
omfwd action to our receiver. Needs the `rsyslog` package (scripts/test installs it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from inputs_support import stored, wait_for
from test_syslog_receiver import SSHD, payload_bytes

from apiwatch.collector.runtime import Collector
from apiwatch.collector.syslog_server import SyslogService
from apiwatch.config import SyslogConfig

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
# RFC 3164 input, as local programs write it: rsyslog's legacy forward format rebuilds the
# `TAG:` of an RFC 5424 input without its colon.
HELLO = b"<13>Mar  3 10:00:00 web1 billing[42]: invoice 7 paid by alice"
# Octet-counted with the RFC 5424 template; newline framing with rsyslog's forward format.
CASES = {
    "octet-counted": ("RSYSLOG_SyslogProtocol23Format", "off"),
    "traditional": ("RSYSLOG_ForwardFormat", "on"),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def service(collector: Collector) -> Iterator[SyslogService]:
    """The receiver on TCP only, with the default message size bound."""
    started = SyslogService(collector.pipeline, SyslogConfig(tcp="127.0.0.1:0"))
    started.start()
    yield started
    started.stop()


def _rsyslogd(folder: Path, target: tuple[str, int], framing: str) -> tuple[
        subprocess.Popen[bytes], int]:
    template, escape = CASES[framing]
    port = _free_port()
    work = folder / "work"
    work.mkdir()
    conf = folder / "rsyslog.conf"
    conf.write_text(f"""
global(workDirectory="{work}" parser.escapeControlCharactersOnReceive="{escape}"
       maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="forward")
ruleset(name="forward") {{
  action(type="omfwd" target="{target[0]}" port="{target[1]}" protocol="tcp"
         TCP_Framing="{framing}" template="{template}")
}}
""")
    process = subprocess.Popen(
        [RSYSLOGD, "-n", "-f", str(conf), "-i", str(folder / "rsyslogd.pid")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        assert process.poll() is None, f"rsyslogd exited with status {process.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    wait_for(listening)
    return process, port


@pytest.mark.parametrize("framing", sorted(CASES))
def test_rsyslog_forwards_intact_and_neutralized(
    collector: Collector, service: SyslogService, tmp_path: Path, shared_data: Path,
    framing: str,
) -> None:
    """Messages fed to rsyslog arrive as events: an sshd failure parsed, a plain message with
    its text intact, every injection payload one event with no control character left."""
    process, port = _rsyslogd(tmp_path, service.bound["tcp"], framing)
    try:
        frames = [SSHD, HELLO] + [
            b"<14>Mar  3 10:00:00 host inj: " + raw
            for raw in payload_bytes(shared_data)
        ]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"".join(b"%d %s" % (len(f), f) for f in frames))
        stats = service.receiver.stats
        wait_for(lambda: stats.messages >= len(frames), seconds=30)
    finally:
        process.terminate()
        process.wait(timeout=10)
    service.stop()
    assert stats.messages == len(frames)
    assert stats.framing_errors == 0
    (login,) = stored(collector, "event.action:authn_login_fail")
    assert login["source.ip"] == "203.0.113.9"
    (hello,) = stored(collector, "process.name:billing")
    assert hello["message"] == "invoice 7 paid by alice"
    assert hello["host.hostname"] == "web1"
    events = stored(collector, "apiwatch.source:syslog")
    assert len(events) == len(frames)
    for event in events:
        for value in event.values():
            if isinstance(value, str):
                assert value.isprintable(), value
