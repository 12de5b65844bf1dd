"""Where alerts go: a signed webhook, a Slack-compatible webhook, email, a SIEM over syslog.

A channel's `send` takes the alert's JSON object (`Repository.get`) and returns once the
receiver accepted it, or raises DeliveryError; retries are the outbox's business.

- webhook: `POST` of `{"alert": {...}}` as JSON, signed like apiwatch's own batches
  (`apiwatch.signing`): `X-Apiwatch-Timestamp: <unix seconds>` and
  `X-Apiwatch-Signature: sha256=<hex HMAC-SHA256 over "<timestamp>.<body>">` keyed by the
  channel's secret, so a receiver can check origin and freshness; `X-Apiwatch-Alert` carries
  the alert id, which a receiver can use to drop an at-least-once repeat.
- slack: `POST {"text": ...}` as Slack incoming webhooks (and Mattermost, Teams' Slack
  connector) take it.
- email: one plain-text message over SMTP (RFC 5321), STARTTLS (RFC 3207) and login if set.
- syslog: the alert as an `alert_raised` event, encoded as a CEF line or an RFC 5424
  message (`apiwatch.formats`), over TCP (RFC 6587 octet counting for RFC 5424, a line for
  CEF) or one UDP datagram (RFC 5426).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
import orjson

from apiwatch.alerts.settings import ChannelConfig
from apiwatch.errors import ApiwatchError
from apiwatch.events import Event, make_event, parse_timestamp
from apiwatch.formats.cef import encode_cef
from apiwatch.formats.syslog import encode_syslog, frame_octet_counted
from apiwatch.signing import SIGNATURE_HEADER, SIGNATURE_PREFIX, TIMESTAMP_HEADER, signature

ALERT_HEADER = "X-Apiwatch-Alert"
#: Syslog severity (RFC 5424 6.2.1) of each alert severity; CEF derives its 0-10 from it.
SYSLOG_SEVERITY = {"low": 5, "medium": 4, "high": 3, "critical": 2}
#: Group fields not copied into the alert event: they would overwrite the event's own.
_OWN_PREFIXES = ("event.", "@timestamp", "message", "log.")


class DeliveryError(ApiwatchError):
    """A channel could not hand over an alert (the outbox retries it)."""


class Channel(Protocol):
    """A destination of alerts."""

    name: str
    min_severity: str

    def send(self, alert: dict[str, Any]) -> None:
        """Deliver `alert` (its JSON object); DeliveryError if the receiver did not take it."""


def summary(alert: dict[str, Any]) -> str:
    """One line: severity, title and on whom."""
    group = ", ".join(f"{k}={v}" for k, v in sorted(alert["group"].items()))
    return f"[{alert['severity']}] {alert['title']} ({group or 'global'})"


def alert_event(alert: dict[str, Any]) -> Event:
    """The alert as an `alert_raised` event: for the ledger and for a SIEM."""
    fields: dict[str, Any] = {
        k: v for k, v in alert["group"].items() if not k.startswith(_OWN_PREFIXES)
    }
    fields.update({
        "rule.id": alert["rule"], "rule.name": alert["title"],
        "event.severity": SYSLOG_SEVERITY.get(alert["severity"], 4),
        "event.start": alert["first_seen"], "event.end": alert["last_seen"],
        "event.reason": alert["reason"],
        "apiwatch.alert.id": alert["id"], "apiwatch.alert.severity": alert["severity"],
        "apiwatch.alert.count": alert["count"],
        "apiwatch.alert.event_ids": list(alert["event_ids"]),
    })
    if "tenant" in alert:
        fields["apiwatch.tenant"] = alert["tenant"]
    ns = round(parse_timestamp(alert["last_seen"]).timestamp() * 1e9)
    return make_event("alert_raised", fields, message=summary(alert), timestamp_ns=ns)


def _post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> None:
    try:
        answer = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if not answer.is_success:
        raise DeliveryError(f"HTTP {answer.status_code}")


class WebhookChannel:
    """JSON POST signed with HMAC-SHA256 (see the module docstring)."""

    def __init__(self, config: ChannelConfig) -> None:
        self.name, self.min_severity = config.name, config.min_severity
        self.url, self.secret = config.url, config.secret
        self.client = httpx.Client(timeout=config.timeout_seconds)

    def send(self, alert: dict[str, Any]) -> None:
        """POST the signed alert."""
        body = orjson.dumps({"alert": alert})
        stamp = str(int(time.time()))
        _post(self.client, self.url, body, {
            "Content-Type": "application/json", TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: SIGNATURE_PREFIX + signature(self.secret, stamp, body),
            ALERT_HEADER: alert["id"],
        })


class SlackChannel:
    """A Slack-compatible incoming webhook."""

    def __init__(self, config: ChannelConfig) -> None:
        self.name, self.min_severity = config.name, config.min_severity
        self.url = config.url
        self.client = httpx.Client(timeout=config.timeout_seconds)

    def send(self, alert: dict[str, Any]) -> None:
        """POST a text message."""
        text = (f":rotating_light: *{summary(alert)}*\n{alert['reason']}\n"
                f"{alert['count']} events, {alert['first_seen']} to {alert['last_seen']} "
                f"- alert `{alert['id']}`")
        _post(self.client, self.url, orjson.dumps({"text": text}),
              {"Content-Type": "application/json"})


class EmailChannel:
    """Plain-text email over SMTP."""

    def __init__(self, config: ChannelConfig) -> None:
        self.name, self.min_severity = config.name, config.min_severity
        self.config = config

    def send(self, alert: dict[str, Any]) -> None:
        """Send one message to the recipients."""
        c = self.config
        message = EmailMessage()
        message["Subject"] = f"apiwatch alert: {summary(alert)}"
        message["From"] = c.sender
        message["To"] = ", ".join(c.recipients)
        message["X-Apiwatch-Alert"] = alert["id"]
        message.set_content(
            f"{summary(alert)}\n\n{alert['reason']}\n\n"
            + orjson.dumps(alert, option=orjson.OPT_INDENT_2).decode() + "\n")
        try:
            with smtplib.SMTP(c.host, c.port or 25, timeout=c.timeout_seconds) as smtp:
                if c.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if c.username:
                    smtp.login(c.username, c.password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP: {exc}") from None


class SyslogChannel:
    """CEF or RFC 5424 to a SIEM over TCP or UDP."""

    def __init__(self, config: ChannelConfig) -> None:
        self.name, self.min_severity = config.name, config.min_severity
        self.config = config

    def send(self, alert: dict[str, Any]) -> None:
        """Send the alert event as one message."""
        c = self.config
        event = alert_event(alert)
        udp = c.protocol == "udp"
        if c.format == "rfc5424":
            message = encode_syslog(event)
            data = message if udp else frame_octet_counted(message)
        else:
            data = encode_cef(event)
            data = data.rstrip(b"\n") if udp else data
        try:
            if udp:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.sendto(data, (c.host, c.port))
            else:
                with socket.create_connection((c.host, c.port), c.timeout_seconds) as sock:
                    sock.sendall(data)
        except OSError as exc:
            raise DeliveryError(f"syslog {c.host}:{c.port}: {exc}") from None


_KINDS: dict[str, type[WebhookChannel | SlackChannel | EmailChannel | SyslogChannel]] = {
    "webhook": WebhookChannel, "slack": SlackChannel, "email": EmailChannel,
    "syslog": SyslogChannel,
}


def build_channel(config: ChannelConfig) -> Channel:
    """The channel a validated `ChannelConfig` describes."""
    return _KINDS[config.type](config)
