"""The wire formats of each destination type; a sender delivers one batch or raises.

- `syslog`, `cef`: RFC 5424 messages framed by octet counting (RFC 6587 3.4.1), or CEF lines
  (newline framed), over TCP or TLS (RFC 5425). Plain syslog has no acknowledgement, so each
  batch uses its own connection and ends with a half-close: the receiver closing its side in
  turn proves it read every byte before it (a receiver that went away makes the batch fail and
  be sent again, rather than vanish in a socket buffer).
- `splunk_hec`: Splunk HTTP Event Collector, `POST /services/collector/event` with
  `Authorization: Splunk <token>` and one JSON object per event, concatenated.
- `elasticsearch`: the `_bulk` API (Elasticsearch and OpenSearch), NDJSON `create` actions
  keyed by `event.id`, so a batch sent again is idempotent: a 409 conflict means "already there".
- `ocsf_file`: OCSF JSON lines appended (and fsynced) to `current.ocsf.jsonl`, renamed to a
  timestamped `.ocsf.jsonl` once it exceeds `max_file_bytes`, ready for object storage.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson

from apiwatch.alerts.channels import DeliveryError
from apiwatch.events import Event, parse_timestamp
from apiwatch.formats.cef import encode_cef
from apiwatch.formats.ecs import encode_ecs
from apiwatch.formats.ocsf import encode_ocsf
from apiwatch.formats.syslog import encode_syslog, frame_octet_counted
from apiwatch.forward.settings import Destination

log = logging.getLogger(__name__)

CURRENT_FILE = "current.ocsf.jsonl"


class Sender(Protocol):
    """Delivers batches to one destination."""

    #: Events the destination refused for good (not retried), since start.
    rejected: int

    def send(self, events: Sequence[Event]) -> None:
        """Deliver `events` in order, or raise DeliveryError (then the batch is retried)."""

    def close(self) -> None:
        """Release connections and files."""


class SyslogSender:
    """RFC 5424 (`syslog`) or CEF (`cef`) over TCP or TLS; see the module docstring."""

    def __init__(self, d: Destination) -> None:
        self.d = d
        self.rejected = 0
        self._context = ssl.create_default_context(cafile=d.ca_file or None) if d.tls else None

    def send(self, events: Sequence[Event]) -> None:
        """Send the batch on a fresh connection and wait for the receiver's close."""
        if self.d.type == "cef":
            data = b"".join(encode_cef(e) for e in events)
        else:
            data = b"".join(frame_octet_counted(encode_syslog(e)) for e in events)
        address = (self.d.host, self.d.port)
        try:
            with socket.create_connection(address, self.d.timeout_seconds) as raw:
                if self._context is None:
                    _send_and_confirm(raw, data)
                else:
                    with self._context.wrap_socket(raw, server_hostname=self.d.host) as tls:
                        _send_and_confirm(tls, data)
        except OSError as exc:
            raise DeliveryError(f"{self.d.type} {self.d.host}:{self.d.port}: {exc}") from None

    def close(self) -> None:
        """Nothing stays open between batches."""


def _send_and_confirm(sock: socket.socket, data: bytes) -> None:
    """Send `data`, half-close, and read until the receiver closes its side in turn."""
    sock.sendall(data)
    if isinstance(sock, ssl.SSLSocket):
        sock.unwrap()  # close_notify both ways (RFC 5425 section 4.4); the TCP socket remains
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(4096):  # until EOF: the receiver read all we sent
        pass


class _HttpSender:
    """Shared by the HTTP destinations: one client, errors as DeliveryError."""

    def __init__(self, d: Destination, auth: tuple[str, str] | None = None) -> None:
        self.d = d
        self.rejected = 0
        self._client = httpx.Client(timeout=d.timeout_seconds, auth=auth,
                                    verify=d.ca_file or True)

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        url = self.d.url.rstrip("/") + path
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{self.d.type} {url}: {exc}") from None
        if response.status_code != 200:
            raise DeliveryError(f"{self.d.type} {url}: HTTP {response.status_code}")
        return response

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


class SplunkHecSender(_HttpSender):
    """Splunk HTTP Event Collector, the JSON event endpoint."""

    def __init__(self, d: Destination) -> None:
        super().__init__(d)
        self._hostname = socket.gethostname()

    def send(self, events: Sequence[Event]) -> None:
        """POST the batch as concatenated HEC event objects."""
        body = b"\n".join(orjson.dumps(self.envelope(e)) for e in events)
        self._post("/services/collector/event", body,
                   {"Authorization": f"Splunk {self.d.token}", "Content-Type": "application/json"})

    def envelope(self, event: Event) -> dict[str, Any]:
        """The HEC object of one event: its time in epoch seconds, and the ECS event."""
        return {
            "time": parse_timestamp(event["@timestamp"]).timestamp(),
            "host": event.get("host.hostname") or event.get("host.name") or self._hostname,
            "source": self.d.source,
            "sourcetype": self.d.sourcetype,
            "event": event,
        }


class BulkSender(_HttpSender):
    """Elasticsearch / OpenSearch `_bulk` with `create` actions and ECS documents."""

    def __init__(self, d: Destination) -> None:
        super().__init__(d, (d.username, d.password) if d.username else None)
        self._headers = {"Content-Type": "application/x-ndjson"}
        if d.api_key:
            self._headers["Authorization"] = f"ApiKey {d.api_key}"

    def send(self, events: Sequence[Event]) -> None:
        """POST the batch; fail if any item failed in a way a retry can fix."""
        lines = []
        for event in events:
            action: dict[str, Any] = {"_index": self.d.index}
            if "event.id" in event:
                action["_id"] = event["event.id"]
            lines += [orjson.dumps({"create": action}) + b"\n", encode_ecs(event)]
        response = self._post("/_bulk", b"".join(lines), self._headers)
        try:
            answer = response.json()
            items = answer["items"] if answer.get("errors") else []
            statuses = [int(next(iter(item.values()))["status"]) for item in items]
        except (ValueError, KeyError, TypeError, StopIteration, AttributeError):
            raise DeliveryError(f"elasticsearch {self.d.url}: unreadable _bulk answer") from None
        retry = [s for s in statuses if s == 429 or s >= 500]
        if retry:
            raise DeliveryError(f"elasticsearch {self.d.url}: {len(retry)} items failed")
        # 409: created by an earlier attempt. Other 4xx: the document itself is refused
        # (mapping conflict); sending it again cannot help, so it is counted and skipped.
        refused = [s for s in statuses if s >= 300 and s != 409]
        if refused:
            self.rejected += len(refused)
            log.error("elasticsearch %s refused %d documents", self.d.url, len(refused))


class OcsfFileSender:
    """OCSF JSON lines in `directory`, rotated by size; see the module docstring."""

    def __init__(self, d: Destination) -> None:
        self.d = d
        self.rejected = 0
        self.directory = Path(d.directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def send(self, events: Sequence[Event]) -> None:
        """Append and fsync the batch; rotate the file when it is full."""
        current = self.directory / CURRENT_FILE
        try:
            with current.open("ab") as fh:
                fh.write(b"".join(encode_ocsf(e) for e in events))
                fh.flush()
                os.fsync(fh.fileno())
                full = fh.tell() >= self.d.max_file_bytes
            if full:
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
                os.rename(current, self.directory / f"{stamp}.ocsf.jsonl")
                fd = os.open(self.directory, os.O_RDONLY)  # make the rename durable
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise DeliveryError(f"ocsf_file {self.directory}: {exc}") from None

    def close(self) -> None:
        """Nothing stays open between batches."""


def build_sender(d: Destination) -> Sender:
    """The sender of a validated destination."""
    if d.type in ("syslog", "cef"):
        return SyslogSender(d)
    kinds: dict[str, type[SplunkHecSender | BulkSender | OcsfFileSender]] = {
        "splunk_hec": SplunkHecSender, "elasticsearch": BulkSender, "ocsf_file": OcsfFileSender,
    }
    return kinds[d.type](d)
