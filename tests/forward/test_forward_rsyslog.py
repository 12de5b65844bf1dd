"""Forwarding to a real rsyslogd (Debian) in RFC 5424 and CEF: intact, in order, across a
receiver restart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from forward_support import Rsyslog, collector, record, wait_for

from apiwatch.collector.runtime import Collector
from apiwatch.collector.syslog_server import SyslogService
from apiwatch.config import Config, SyslogConfig
from apiwatch.store import Query
from tls_support import self_signed


def _event_id(line: bytes, kind: str) -> str:
    if kind == "syslog":
        # RFC 5424: PRI VERSION ... then MSG = BOM + the ECS JSON of the event.
        assert re.match(rb"<\d+>1 \d{4}-", line), line
        return str(json.loads(line[line.index(b"\xef\xbb\xbf{") + 3:])["event.id"])
    assert line.startswith(b"CEF:0|apiwatch|apiwatch|"), line
    found = re.search(rb"externalId=(\S+)", line)
    assert found, line
    return found.group(1).decode()


@pytest.mark.parametrize("kind", ["syslog", "cef"])
def test_rsyslog_receives_all_in_order_across_a_restart(tmp_path: Path, kind: str) -> None:
    """Events recorded before, during and after an rsyslogd outage all reach it, each once and
    in ledger order, and the outage is counted as failed attempts."""
    rsyslog = Rsyslog(tmp_path)
    rsyslog.start()
    try:
        with collector(tmp_path / "data", {"name": "siem", "type": kind, "host": "127.0.0.1",
                                           "port": rsyslog.port, "batch_size": 7}) as c:
            expected = record(c, 20)
            wait_for(lambda: len(rsyslog.lines()) >= 20, "the first events")
            rsyslog.stop()
            expected += record(c, 15, start=20)
            wait_for(lambda: c.forwarder.failures["siem"] >= 2, "failed attempts")
            rsyslog.start()
            expected += record(c, 5, start=35)
            wait_for(lambda: c.forwarder.positions["siem"] == c.pipeline.ledger.size,
                     "the forwarder to catch up")
            assert c.forwarder.sent["siem"] == 40
    finally:
        rsyslog.stop()
    received = [_event_id(line, kind) for line in rsyslog.lines()]
    assert received == expected


def test_rfc5425_tls_to_apiwatch_syslog_receiver(tmp_path: Path) -> None:
    """Over TLS (RFC 5425, the receiver's certificate checked against `ca_file`) the events
    reach another collector's syslog listener, in order."""
    cert, key = self_signed(tmp_path)
    receiving = Collector.open(Config(data_dir=tmp_path / "receiver"))
    service = SyslogService(receiving.pipeline, SyslogConfig(
        tcp="127.0.0.1:0", tls_cert=str(cert), tls_key=str(key)))
    service.start()
    query = Query.parse("event.action:authn_login_success", order="oldest")
    try:
        with collector(tmp_path / "sender", {
            "name": "tls", "type": "syslog", "host": "localhost", "tls": True,
            "ca_file": str(cert), "port": service.bound["tcp"][1],
        }) as c:
            expected = record(c, 6)
            wait_for(lambda: len(receiving.store.query(query).events) == 6, "the events")
            assert c.forwarder.failures["tls"] == 0
        received = [s.event["event.id"] for s in receiving.store.query(query).events]
    finally:
        service.stop()
        receiving.close()
    assert received == expected
