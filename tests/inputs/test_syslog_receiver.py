"""The syslog receiver: RFC 6587 framings, TLS, UDP, bounded messages, errors kept per peer."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from inputs_support import make_config, stored, wait_for

from apiwatch.collector.runtime import Collector
from apiwatch.collector.syslog_server import MessageConverter, SyslogError, SyslogService
from apiwatch.config import SyslogConfig
from apiwatch.events import make_event
from apiwatch.formats.ecs import encode_ecs
from store_trouble import StorageTrouble
from tls_support import self_signed

SSHD = b"<38>Mar  3 10:00:01 web1 sshd[411]: Failed password for root from 203.0.113.9 port 22 ssh2"
R5424 = b"<165>1 2024-03-03T10:00:02.5+01:00 web1 billing 77 ID47 [ex@32473 a=\"1\"] paid"


def _send(address: tuple[str, int], data: bytes) -> None:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)


def _octets(*messages: bytes) -> bytes:
    return b"".join(b"%d %s" % (len(m), m) for m in messages)


class TestMessageConverter:
    def test_sshd_message_becomes_sshd_event(self) -> None:
        """An sshd message goes through the sshd parser (a failed login with its address)."""
        (event,) = MessageConverter(year=2024)(SSHD)
        assert event["event.action"] == "authn_login_fail"
        assert event["source.ip"] == "203.0.113.9"
        assert event["@timestamp"].startswith("2024-03-03T10:00:01")

    def test_other_program_becomes_generic_event(self) -> None:
        """A message of another program is kept as `syslog_message` with sender and level."""
        (event,) = MessageConverter()(R5424)
        assert event["event.action"] == "syslog_message"
        assert event["message"] == "paid"
        assert event["process.name"] == "billing"
        assert event["log.level"] == "notice"
        assert event["@timestamp"] == "2024-03-03T09:00:02.500000Z"

    def test_apiwatch_json_payload_is_decoded(self) -> None:
        """An apiwatch ECS event carried as the message is decoded as that event."""
        original = make_event("authz_fail", {"user.name": "mallory", "url.path": "/admin"})
        body = encode_ecs(original).rstrip(b"\n")
        (event,) = MessageConverter()(b"<14>1 2024-03-03T10:00:00Z h app - - - " + body)
        assert event["event.action"] == "authz_fail"
        assert event["event.id"] == original["event.id"]

    def test_invalid_json_and_non_syslog_are_parse_failures(self) -> None:
        """A broken JSON event or a line that is not syslog is a `parse_failure` with the line."""
        convert = MessageConverter()
        bad_json = b'<14>1 2024-03-03T10:00:00Z h app - - - {"event.action": "nope"}'
        for raw in (bad_json, b"hello world"):
            (event,) = convert(raw)
            assert event["event.action"] == "parse_failure"
            assert event["event.original"] == raw.decode()


class TestReceiver:
    def test_octet_counted_and_newline_framing(
        self, collector: Collector, syslog_service: SyslogService
    ) -> None:
        """Both RFC 6587 framings arrive; a message with an LF inside survives octet counting."""
        multi = b"<14>1 2024-03-03T10:00:00Z h app - - - line one\nline two"
        _send(syslog_service.bound["tcp"], _octets(SSHD, multi))
        _send(syslog_service.bound["tcp"], R5424 + b"\n" + SSHD + b"\n")
        syslog_service.stop()
        assert len(stored(collector, "event.action:authn_login_fail")) == 2
        (joined,) = stored(collector, "process.name:app")
        assert joined["message"] == "line one\\nline two"  # neutralized, still one event
        assert stored(collector, "apiwatch.source:syslog")
        assert syslog_service.receiver.stats.messages == 4

    def test_broken_stream_closes_only_that_connection(
        self, collector: Collector, syslog_service: SyslogService
    ) -> None:
        """Bad framing and an oversized frame are counted and close their connection only."""
        tcp = syslog_service.bound["tcp"]
        _send(tcp, b"garbage without framing\n")
        _send(tcp, b"99999 " + b"x" * 100)
        _send(tcp, _octets(SSHD))
        syslog_service.stop()
        stats = syslog_service.receiver.stats
        assert stats.framing_errors == 2
        assert stats.connections == 3
        assert len(stored(collector, "event.action:authn_login_fail")) == 1

    def test_udp_datagrams_and_size_bound(
        self, collector: Collector, syslog_service: SyslogService
    ) -> None:
        """Each UDP datagram is one message; one over max_message_bytes is dropped and counted."""
        udp = syslog_service.bound["udp"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(SSHD, udp)
            sock.sendto(b"<14>" + b"y" * 9000, udp)
        stats = syslog_service.receiver.stats
        wait_for(lambda: stats.messages == 1 and stats.oversized_datagrams == 1)
        syslog_service.stop()
        assert syslog_service.receiver.stats.oversized_datagrams == 1
        assert len(stored(collector, "event.action:authn_login_fail")) == 1

    def test_injection_payloads_are_neutralized(
        self, collector: Collector, syslog_service: SyslogService, shared_data: Path
    ) -> None:
        """Every injection payload arrives as one event whose text has no control character."""
        frames = [b"<14>1 2024-03-03T10:00:00Z host inj - - - " + raw for raw in payload_bytes(
            shared_data)]
        _send(syslog_service.bound["tcp"], _octets(*frames))
        syslog_service.stop()
        events = stored(collector, "apiwatch.source:syslog")
        assert len(events) == len(frames)
        for event in events:
            for value in event.values():
                if isinstance(value, str):
                    assert value.isprintable(), value

    def test_tls_listener(self, collector: Collector, tmp_path: Path) -> None:
        """With a certificate and key the TCP listener speaks TLS (RFC 5425); a plain-text
        peer fails its handshake and is counted, not fatal."""
        cert, key = self_signed(tmp_path)
        service = SyslogService(collector.pipeline, SyslogConfig(
            tcp="127.0.0.1:0", tls_cert=str(cert), tls_key=str(key)))
        service.start()
        try:
            address = service.bound["tcp"]
            _send(address, _octets(SSHD))  # plain text to a TLS port
            context = ssl.create_default_context(cafile=str(cert))
            with socket.create_connection(address, timeout=5) as raw, \
                    context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(_octets(SSHD))
                tls.unwrap()  # close_notify: a clean TLS end
        finally:
            service.stop()
        assert service.receiver.stats.connection_errors == 1
        assert len(stored(collector, "event.action:authn_login_fail")) == 1

    def test_bad_address_or_port_in_use_fails_to_start(self, collector: Collector) -> None:
        """A listener that cannot bind is a SyslogError at start, naming the address."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            for spec in (SyslogConfig(tcp=f"127.0.0.1:{port}"), SyslogConfig(tcp="nonsense")):
                with pytest.raises(SyslogError):
                    SyslogService(collector.pipeline, spec).start()


def payload_bytes(shared_data: Path) -> list[bytes]:
    """The injection payloads as bytes: invalid UTF-8 is given as hex, structures as JSON."""
    payloads = json.loads((shared_data / "payloads/injection_payloads.json").read_text())
    out = []
    for p in payloads["payloads"]:
        value = p["payload"]
        if value is None:
            out.append(bytes.fromhex(p["payload_bytes_hex"]))
        elif isinstance(value, str):
            out.append(value.encode("utf-8", "surrogatepass"))
        else:
            out.append(json.dumps(value).encode())
    return out




class TestStorageFailures:
    """A syslog peer gets no acknowledgement: what the collector could not store is counted
    as lost; what the ledger holds but the index store refused is stored, and indexed later."""

    def test_a_batch_the_index_store_refuses_is_indexed_with_the_next(
        self, collector: Collector, syslog_service: SyslogService
    ) -> None:
        """The real SQLite store fails (a trigger, as a failing disk would): the batch counts
        as stored and as one store failure, nothing as lost, and once the store works the
        next batch brings it into the index."""
        trouble = StorageTrouble(collector.config.data_dir / "index.sqlite3")
        stats = syslog_service.receiver.stats
        try:
            trouble.switch(on=True)
            _send(syslog_service.bound["tcp"], _octets(SSHD))
            wait_for(lambda: stats.store_failures == 1)
            trouble.switch(on=False)
            _send(syslog_service.bound["tcp"], _octets(R5424))
            wait_for(lambda: stats.messages == 2)
        finally:
            trouble.close()
        syslog_service.stop()
        assert (stats.store_failures, stats.lost_messages) == (1, 0)
        assert len(stored(collector, "apiwatch.source:syslog")) == 2

    def test_messages_the_ledger_cannot_take_are_counted_lost(self, small_disk: Any) -> None:
        """On a full disk (a real tmpfs) the ledger refuses the batch: each of its messages
        is counted lost; once there is room the receiver stores again."""
        collector = Collector.open(make_config(small_disk.path / "data"))
        service = SyslogService(collector.pipeline, SyslogConfig(tcp="127.0.0.1:0"))
        service.start()
        stats = service.receiver.stats
        try:
            filler = small_disk.fill()
            long_line = b"<14>1 2024-03-03T10:00:00Z h app - - - " + b"word " * 1500
            _send(service.bound["tcp"], _octets(long_line, long_line, long_line))
            wait_for(lambda: stats.lost_messages == 3)
            filler.unlink()
            _send(service.bound["tcp"], _octets(SSHD))
            wait_for(lambda: stats.messages == 1)
        finally:
            service.stop()
            collector.close()
        assert stats.lost_messages == 3
