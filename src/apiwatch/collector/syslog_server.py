"""The syslog receiver: RFC 5424 and RFC 3164 messages over TCP (optionally TLS) and UDP.

TCP streams are split by `Deframer` (RFC 6587: octet counting or newline framing, per frame);
TLS follows RFC 5425 (the same framing inside TLS); UDP carries one message per datagram
(RFC 5426). A message becomes events by `message_events`: sshd messages through the sshd parser,
apiwatch JSON events through the JSON lines decoder, anything else as one generic
`syslog_message` event; a line that is not syslog is kept as a `parse_failure` event.

Everything runs on one asyncio loop. Connections only deframe; a single writer task hands the
queued messages, in batches, to a worker thread that converts them and calls
`Pipeline.ingest` (durable in the ledger before the next batch). A full queue stops reading
from TCP peers (back-pressure) and drops UDP datagrams (counted). A broken stream, an
oversized frame or a failed TLS handshake closes that one connection and is counted, never
more. `SyslogService` runs the receiver in a background thread beside `apiwatch serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, tzinfo
from typing import Any

from apiwatch.collector.pipeline import Pipeline
from apiwatch.config import SyslogConfig
from apiwatch.errors import ApiwatchError, DecodeError
from apiwatch.events import VOCABULARY, Action, Event, make_event, register
from apiwatch.formats.jsonl import decode_line
from apiwatch.formats.parsed import LineParseError, datetime_ns, failure_event
from apiwatch.formats.sshd import SshdParser, is_sshd
from apiwatch.formats.syslog_parse import Deframer, FramingError, SyslogMessage, parse_syslog
from apiwatch.store import StoreError

log = logging.getLogger(__name__)

DATASET = "syslog"
#: Messages waiting for the writer; beyond this TCP reads pause and UDP datagrams are dropped.
QUEUE_MESSAGES = 20_000
BATCH_MESSAGES = 2_000
TLS_HANDSHAKE_SECONDS = 10.0
#: How long a stopping receiver waits for open connections to end before closing them.
CLOSE_GRACE_SECONDS = 1.0
ACCEPT_GRACE_SECONDS = 0.1
_READ_BYTES = 256 * 1024
#: RFC 5424 section 6.2.1 severities, as rsyslog names them.
_LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

# The generic action of a syslog message no parser knows. It belongs in the vocabulary's
# apiwatch table (asked of its owner); until it is there it is registered here.
GENERIC_ACTION = "syslog_message"
if GENERIC_ACTION not in VOCABULARY:
    register(Action(
        GENERIC_ACTION, "INFO", ("host",), ("info",), "unknown",
        "A syslog message that no parser turned into a more specific event.",
        ("host", "program", "message"), origin="apiwatch",
    ))


class SyslogError(ApiwatchError):
    """The syslog receiver cannot start (bad address, port in use, unreadable TLS key)."""


def _counter(description: str) -> Any:
    return dataclasses.field(default=0, metadata={"help": description})


@dataclass
class ReceiverStats:
    """Counters of one receiver; every problem a peer causes lands in one of them. Each
    field's `help` metadata says what it counts (/metrics shows them)."""

    connections: int = _counter("TCP connections accepted.")
    messages: int = _counter("Messages stored (in the ledger).")
    events: int = _counter("Events stored from those messages.")
    parse_failures: int = _counter("Messages kept as parse_failure events.")
    framing_errors: int = _counter(
        "TCP connections closed for broken framing or an oversized frame."
    )
    connection_errors: int = _counter("Connections reset or failed in the TLS handshake.")
    oversized_datagrams: int = _counter("UDP datagrams over the size limit, dropped.")
    dropped_datagrams: int = _counter("UDP datagrams dropped because the queue was full.")
    lost_messages: int = _counter(
        "Messages received but not stored: the ledger failed (a full disk, say)."
    )
    store_failures: int = _counter(
        "Batches in the ledger that the index store refused; it takes them back later."
    )


class MessageConverter:
    """Turns one received syslog message (bytes, framing removed) into events.

    `year` and `tz` date RFC 3164 timestamps, which carry neither (see YearlessClock).
    """

    def __init__(self, *, year: int | None = None, tz: tzinfo = UTC) -> None:
        self._sshd = SshdParser(year=year, tz=tz)

    def __call__(self, raw: bytes) -> list[Event]:
        """The events of one message; never raises for bad input (it becomes a failure event)."""
        # surrogateescape keeps invalid bytes visible: the sanitizer escapes them as \\udcXX.
        line = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
        try:
            message = parse_syslog(line, self._sshd.clock)
        except LineParseError as exc:
            return [failure_event(line, DATASET, exc.detail)]
        if message.msg.startswith(" "):
            # rsyslog's RFC 5424 forwarding template keeps the space that followed an RFC 3164
            # tag (`sshd[1]: text`) in MSG; rsyslog's own mmrm1stspace exists to drop it.
            message = dataclasses.replace(message, msg=message.msg[1:])
        if is_sshd(message):
            try:
                events = self._sshd.message_events(message, line)
            except LineParseError as exc:
                return [failure_event(line, DATASET, exc.detail)]
            # A benign sshd message (a session opened) is still kept, as a generic one.
            return events or [generic_event(message, line)]
        body = message.json_body()
        if body is not None:
            try:
                return [decode_line(body.encode("utf-8", "surrogateescape"), 1)]
            except DecodeError as exc:
                return [failure_event(line, DATASET, f"apiwatch JSON event in syslog: {exc}")]
        return [generic_event(message, line)]


def generic_event(message: SyslogMessage, original: str) -> Event:
    """The `syslog_message` event of a message: its text, sender, program and severity."""
    fields: dict[str, Any] = {"event.dataset": DATASET, "event.original": original}
    if message.hostname:
        fields["host.hostname"] = message.hostname
    if message.app_name:
        fields["process.name"] = message.app_name
    if message.procid and message.procid.isdigit():
        fields["process.pid"] = int(message.procid)
    if message.msgid:
        fields["event.code"] = message.msgid
    if message.severity is not None:
        # ECS event.severity is the source's own scale (make_event already uses syslog's) and
        # log.level the source's own level name.
        fields["event.severity"] = message.severity
        fields["log.level"] = _LEVELS[message.severity]
    stamp = None if message.timestamp is None else datetime_ns(message.timestamp)
    return make_event(GENERIC_ACTION, fields, message=message.msg, timestamp_ns=stamp)


class SyslogReceiver:
    """Receives syslog on any number of listeners and stores it under one source name."""

    def __init__(
        self,
        pipeline: Pipeline,
        source: str,
        *,
        max_message_bytes: int = 64 * 1024,
        converter: MessageConverter | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.source = source
        self.max_message_bytes = max_message_bytes
        self.convert = converter or MessageConverter()
        self.stats = ReceiverStats()
        self._queue: asyncio.Queue[bytes] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._servers: list[asyncio.Server] = []
        self._transports: list[asyncio.DatagramTransport] = []
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    def _start_writer(self) -> asyncio.Queue[bytes]:
        if self._queue is None:
            self._queue = asyncio.Queue(QUEUE_MESSAGES)
            self._writer = asyncio.create_task(self._write_loop(self._queue))
        return self._queue

    async def listen_tcp(
        self, host: str, port: int, tls: ssl.SSLContext | None = None
    ) -> tuple[str, int]:
        """Accept TCP (TLS if `tls`) connections; returns the bound address (port 0 picks one)."""
        self._start_writer()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._connection(reader, writer, tls)

        try:
            server = await asyncio.start_server(accept, host, port, backlog=1024)
        except OSError as exc:
            raise SyslogError(f"cannot listen for syslog on {host}:{port}: {exc}") from None
        self._servers.append(server)
        bound: tuple[str, int] = server.sockets[0].getsockname()[:2]
        return bound

    async def listen_udp(self, host: str, port: int) -> tuple[str, int]:
        """Receive UDP datagrams, one message each; returns the bound address."""
        self._start_writer()
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(host, port)
            )
        except OSError as exc:
            raise SyslogError(f"cannot receive syslog on udp {host}:{port}: {exc}") from None
        self._transports.append(transport)
        bound: tuple[str, int] = transport.get_extra_info("sockname")[:2]
        return bound

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.stats.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._connections[task] = writer
        queue = self._start_writer()
        deframer = Deframer(self.max_message_bytes)
        peer = writer.get_extra_info("peername")
        try:
            if tls is not None:
                # Handshake here, not in start_server, so that a failed one is counted.
                await writer.start_tls(tls, ssl_handshake_timeout=TLS_HANDSHAKE_SECONDS)
            while chunk := await reader.read(_READ_BYTES):
                for frame in deframer.feed(chunk):
                    await queue.put(frame)
            for frame in deframer.close():
                await queue.put(frame)
        except FramingError as exc:
            self.stats.framing_errors += 1
            log.warning("syslog connection from %s closed: %s", peer, exc)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self.stats.connection_errors += 1
            log.info("syslog connection from %s failed: %s", peer, exc)
        finally:
            if task is not None:
                self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    def datagram(self, data: bytes) -> None:
        """Queue one UDP datagram (dropped, and counted, if too big or the queue is full)."""
        if len(data) > self.max_message_bytes:
            self.stats.oversized_datagrams += 1
            return
        try:
            self._start_writer().put_nowait(data)
        except asyncio.QueueFull:
            self.stats.dropped_datagrams += 1

    async def _write_loop(self, queue: asyncio.Queue[bytes]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < BATCH_MESSAGES and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await asyncio.to_thread(self._store, batch)
            except Exception:  # a bug must not stop receiving: log it and keep going
                self.stats.lost_messages += len(batch)
                log.exception("syslog batch of %d messages failed", len(batch))
            finally:
                for _ in batch:
                    queue.task_done()

    def _store(self, frames: Sequence[bytes]) -> None:
        events: list[Event] = []
        failures = 0
        for frame in frames:
            converted = self.convert(frame)
            failures += sum(1 for e in converted if e["event.action"] == "parse_failure")
            events.extend(converted)
        try:
            self.pipeline.ingest(self.source, events)
        except StoreError as exc:
            # Durable in the ledger: the store takes the batch back before the next one
            # (or on restart), so the messages count as stored.
            self.stats.store_failures += 1
            log.warning("index store refused %d syslog events (kept in the ledger): %s",
                        len(events), exc)
        except (ApiwatchError, OSError):
            # A syslog peer gets no acknowledgement to retry on: these messages are lost.
            self.stats.lost_messages += len(frames)
            log.exception("could not store %d syslog events from %s", len(events), self.source)
            return
        self.stats.messages += len(frames)
        self.stats.parse_failures += failures
        self.stats.events += len(events)

    async def close(self) -> None:
        """Stop listening, let open connections finish (up to CLOSE_GRACE_SECONDS), store
        everything received, stop the writer."""
        # A moment for connections already waiting in the backlog to be accepted and their
        # handlers started: their senders consider them established.
        await asyncio.sleep(ACCEPT_GRACE_SECONDS)
        for server in self._servers:
            server.close()
        for transport in self._transports:
            transport.close()
        if self._connections:
            # Peers that are done sending (and senders that are closing) end by themselves.
            await asyncio.wait(list(self._connections), timeout=CLOSE_GRACE_SECONDS)
        for writer in list(self._connections.values()):
            writer.close()
        if self._connections:
            await asyncio.wait(list(self._connections))
        if self._queue is not None and self._writer is not None:
            await self._queue.join()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    def snapshot(self) -> dict[str, int]:
        """The counters as a plain mapping (for logs and metrics)."""
        return asdict(self.stats)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, receiver: SyslogReceiver) -> None:
        self.receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.receiver.datagram(data)


def split_address(text: str, where: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`) as host and port; SyslogError naming `where`."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise SyslogError(f"{where}: {text!r} is not HOST:PORT")
    return host, int(port)


def server_tls(cert: str, key: str) -> ssl.SSLContext:
    """A TLS server context (RFC 5425) from PEM files; SyslogError if they cannot be loaded."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SyslogError(f"cannot load the syslog TLS certificate or key: {exc}") from None
    return context


class SyslogService:
    """A receiver on its own event loop in a background thread, beside another server."""

    def __init__(self, pipeline: Pipeline, settings: SyslogConfig) -> None:
        self.receiver = SyslogReceiver(
            pipeline, settings.source, max_message_bytes=settings.max_message_bytes
        )
        self.settings = settings
        self.bound: dict[str, tuple[str, int]] = {}
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="apiwatch-syslog", daemon=True)

    def start(self) -> None:
        """Bind every listener and start receiving; raises SyslogError if one cannot bind."""
        tls = (self.settings.tls_cert, self.settings.tls_key)
        if any(tls) and not all(tls):
            raise SyslogError("TLS needs both [syslog] tls_cert and tls_key")
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self._bind()
        except BaseException as exc:
            self._error = exc
            await self.receiver.close()
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.receiver.close()

    async def _bind(self) -> None:
        spec = self.settings
        if spec.tcp:
            host, port = split_address(spec.tcp, "[syslog] tcp")
            tls = server_tls(spec.tls_cert, spec.tls_key) if spec.tls_cert else None
            self.bound["tcp"] = await self.receiver.listen_tcp(host, port, tls)
        if spec.udp:
            host, port = split_address(spec.udp, "[syslog] udp")
            self.bound["udp"] = await self.receiver.listen_udp(host, port)

    def stop(self) -> None:
        """Stop receiving, store everything already received, and end the thread."""
        if self._thread.is_alive() and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join()
