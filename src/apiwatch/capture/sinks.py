"""Where the emitter puts sanitized events: the spool, a rotated JSON-lines file, syslog, stdout."""

from __future__ import annotations

import os
import socket
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from apiwatch.capture.batch import ecs_lines
from apiwatch.capture.emitter import drop_report
from apiwatch.capture.spool import Spool, SpoolFull
from apiwatch.events import Event
from apiwatch.formats.ecs import encode_ecs
from apiwatch.formats.syslog import encode_syslog, frame_octet_counted


class SpoolSink:
    """Writes batches to the spool; past its cap, drops and counts, then reports the drop."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.dropped = 0
        self._unreported = 0

    def write(self, events: Sequence[Event]) -> None:
        """Append the batch, preceded by a drop report if events were lost since last time."""
        if not events:
            return
        lines = list(ecs_lines(events))
        report = 1 if self._unreported else 0
        if report:
            lines.insert(0, encode_ecs(drop_report(self._unreported, "spool full"))[:-1])
        try:
            self.spool.append(lines)
            written = len(lines)
        except SpoolFull:
            written = self._append_what_fits(lines)
        if report and written:
            self._unreported = 0
        lost = len(events) - max(0, written - report)
        self.dropped += lost
        self._unreported += lost

    def _append_what_fits(self, lines: list[bytes]) -> int:
        # A burst larger than the room left must not lose the part that fits: keep the oldest
        # lines, in order, one append each (this path runs only at the cap).
        for written, line in enumerate(lines):
            try:
                self.spool.append([line])
            except SpoolFull:
                return written
        return len(lines)

    def close(self) -> None:
        """Close the active segment so the next start ships it."""
        self.spool.roll()


class JsonLinesFileSink:
    """ECS JSON lines appended to a file, rotated by size, keeping `backups` old files."""

    def __init__(self, path: Path, *, max_bytes: int = 64 * 1024 * 1024, backups: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._fh: BinaryIO = path.open("ab")

    def write(self, events: Sequence[Event]) -> None:
        """Append the batch and rotate when the file passed its size."""
        if not events:
            return
        self._fh.write(b"\n".join(ecs_lines(events)))
        self._fh.write(b"\n")
        self._fh.flush()
        if self._fh.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._fh.close()
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._fh = self.path.open("ab")

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


class SyslogSink:
    """RFC 5424 over TCP (or TLS) with RFC 6587 octet counting; reconnects on failure."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        app_name: str = "apiwatch",
        hostname: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.address = (host, port)
        self.tls = tls
        self.app_name = app_name
        self.hostname = hostname or socket.gethostname()
        self.timeout = timeout
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=self.timeout)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname=self.address[0])
        return sock

    def write(self, events: Sequence[Event]) -> None:
        """Send the batch; one reconnect is tried before the failure is raised (and counted)."""
        payload = b"".join(
            frame_octet_counted(
                encode_syslog(e, hostname=self.hostname, app_name=self.app_name,
                              procid=str(os.getpid()))
            )
            for e in events
        )
        for attempt in range(2):
            try:
                if self._sock is None:
                    self._sock = self._connect()
                self._sock.sendall(payload)
                return
            except OSError:
                self.close()
                if attempt:
                    raise

    def close(self) -> None:
        """Close the connection."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class StdoutSink:
    """ECS JSON lines on standard output (containers, development)."""

    def write(self, events: Sequence[Event]) -> None:
        """Write the batch to stdout."""
        if not events:
            return
        out = sys.stdout.buffer
        out.write(b"\n".join(ecs_lines(events)) + b"\n")
        out.flush()

    def close(self) -> None:
        """Nothing to release; stdout belongs to the process."""
