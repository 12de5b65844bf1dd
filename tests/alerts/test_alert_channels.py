"""Channels against real receivers on 127.0.0.1: webhook, Slack, SMTP, syslog TCP/UDP."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from alerts_support import SECRET, wait_until, webhook

from apiwatch.alerts import ChannelConfig, DeliveryError, alert_event, build_channel

ALERT: dict[str, Any] = {
    "id": "01a21c3e-0000-7000-8000-000000000001", "rule": "brute_force_ip_fast",
    "title": "Brute force from one address (fast)", "severity": "high", "status": "open",
    "group": {"source.ip": "203.0.113.7"}, "count": 6, "suppressed": 0,
    "first_seen": "2026-11-27T08:00:00.000000Z", "last_seen": "2026-11-27T08:00:05.000000Z",
    "event_ids": ["e1", "e2"], "reason": "more than 5 events", "timeline": "/v1/events?q=x",
    "history": [],
}


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough of RFC 5321 to take one message."""

    def handle(self) -> None:
        server: Any = self.server
        self.wfile.write(b"220 test ESMTP\r\n")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                self.wfile.write(b"354 go\r\n")
                lines = []
                while (data := self.rfile.readline()) != b".\r\n":
                    lines.append(data)
                server.messages.append(b"".join(lines))
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


class _Lines(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: Any = self.server
        server.messages.append(self.rfile.read())


@contextmanager
def _tcp(handler: type[socketserver.BaseRequestHandler]) -> Iterator[Any]:
    server: Any = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.messages = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_posts_the_alert_signed_with_the_channel_secret() -> None:
    """The webhook body is {"alert": ...}, signed over timestamp.body, with the alert id."""
    with webhook() as hook:
        build_channel(ChannelConfig("h", "webhook", url=hook.url, secret=SECRET)).send(ALERT)
        [delivery] = hook.deliveries
    assert delivery.alert == ALERT
    assert delivery.signed_by(SECRET)
    assert delivery.headers["x-apiwatch-alert"] == ALERT["id"]


def test_a_refusing_receiver_is_a_delivery_error() -> None:
    """An HTTP 500 from the receiver raises DeliveryError (the outbox then retries)."""
    with webhook() as hook:
        hook.status = 500
        channel = build_channel(ChannelConfig("h", "webhook", url=hook.url, secret=SECRET))
        with pytest.raises(DeliveryError, match="500"):
            channel.send(ALERT)


def test_slack_gets_a_text_message() -> None:
    """A Slack-compatible webhook gets {"text": ...} naming the rule's title and the group."""
    with webhook() as hook:
        build_channel(ChannelConfig("s", "slack", url=hook.url)).send(ALERT)
        [delivery] = hook.deliveries
    text = orjson.loads(delivery.body)["text"]
    assert "Brute force from one address" in text
    assert "source.ip=203.0.113.7" in text


def test_email_is_sent_over_smtp() -> None:
    """The email channel hands one message with the alert to the SMTP server."""
    with _tcp(_Smtp) as server:
        port = server.server_address[1]
        build_channel(ChannelConfig("m", "email", host="127.0.0.1", port=port,
                                    sender="apiwatch@example.org",
                                    recipients=("soc@example.org",))).send(ALERT)
    [message] = server.messages
    assert b"Subject: apiwatch alert: [high] Brute force" in message
    assert b"To: soc@example.org" in message
    assert ALERT["id"].encode() in message


def test_syslog_cef_over_tcp_is_one_line() -> None:
    """A SIEM over TCP gets one CEF line for the alert, with its source address."""
    with _tcp(_Lines) as server:
        port = server.server_address[1]
        build_channel(ChannelConfig("siem", "syslog", host="127.0.0.1", port=port)).send(ALERT)
        assert wait_until(lambda: bool(server.messages))
    [data] = server.messages
    assert data.startswith(b"CEF:0|apiwatch|apiwatch|")
    assert b"|alert_raised|" in data
    assert b"src=203.0.113.7" in data
    assert data.count(b"\n") == 1


def test_syslog_rfc5424_over_udp_is_one_datagram() -> None:
    """Over UDP an RFC 5424 alert is one datagram whose MSGID is alert_raised."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        build_channel(ChannelConfig("siem", "syslog", host="127.0.0.1",
                                    port=sock.getsockname()[1], protocol="udp",
                                    format="rfc5424")).send(ALERT)
        data = sock.recv(65536)
    assert data.startswith(b"<83>1 ")  # authpriv (10) * 8 + error (3): a high alert
    assert b" alert_raised " in data


def test_alert_event_carries_rule_group_and_severity() -> None:
    """The ledger/SIEM form of an alert has ECS rule fields, the group and a severity."""
    event = alert_event(ALERT)
    assert event["event.action"] == "alert_raised"
    assert event["event.kind"] == "alert"
    assert event["rule.id"] == "brute_force_ip_fast"
    assert event["source.ip"] == "203.0.113.7"
    assert event["event.severity"] == 3
