"""`apiwatch serve`: run the collector (ingest, query API, /metrics) under uvicorn.

`apiwatch serve --init` writes a commented config with fresh secrets and stops. Without any
config the collector still starts (it then refuses every batch, having no sources) and says
how to create one. SIGTERM or SIGINT stops it gracefully: no new connections, in-flight
batches finish, then a final checkpoint and snapshot are written.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click
import uvicorn

from apiwatch.cli import main
from apiwatch.cli._exit import fail
from apiwatch.collector.gc_policy import collector_gc
from apiwatch.collector.runtime import Collector
from apiwatch.config import CONFIG_NAME, Config, load_config
from apiwatch.errors import ApiwatchError
from apiwatch.heap import keep_freed_memory

if TYPE_CHECKING:
    from apiwatch.collector.syslog_server import SyslogService

#: Seconds uvicorn waits for in-flight requests after a stop signal.
GRACEFUL_SECONDS = 30


def split_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`) as a host and a port; ClickException if malformed."""
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{listen!r} is not HOST:PORT", param_hint="--listen")
    return host, int(port)


def _write_init(path: Path) -> None:
    from apiwatch.config import default_config_text  # noqa: PLC0415

    text = default_config_text()
    try:
        # O_EXCL: never overwrite an existing config (it holds the only copy of its secrets).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(f"{path} already exists; not overwriting it")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    config = load_config(path, env={})
    click.echo(f"wrote {path}")
    for name, source in config.sources.items():
        click.echo(f"source {name!r} token: {source.token}")
    click.echo(f"read token (GET /v1/events): {config.server.read_token}")
    click.echo(f"start the collector with: apiwatch serve --config {path}")


def _load(config_path: Path | None, data: Path | None, listen: str | None) -> Config:
    path = config_path
    if path is None and Path(CONFIG_NAME).is_file():
        path = Path(CONFIG_NAME)
    config = load_config(path)
    if data is not None:
        config.data_dir = data
    if listen is not None:
        config.server.listen = listen
    return config


def _ignore_signal(signum: int, frame: FrameType | None) -> None:
    """Stand-in handler while uvicorn owns the stop signals (see `serve`)."""


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a busy port is a one-line error (exit 2)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every keep-alive answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    return sock


def _start_syslog(config: Config, collector: Collector) -> SyslogService | None:
    """Start the `[syslog]` receiver if it has a listener; exits 2 if it cannot bind."""
    settings = config.syslog
    if not (settings.tcp or settings.udp):
        return None
    # Imported late, like the app: only a configured receiver needs it.
    from apiwatch.collector.syslog_server import SyslogError, SyslogService  # noqa: PLC0415

    service = SyslogService(collector.pipeline, settings)
    try:
        service.start()
    except SyslogError as exc:
        fail(str(exc))
    for kind, (host, port) in service.bound.items():
        click.echo(f"syslog ({kind}) on {host}:{port} as source {settings.source!r}", err=True)
    return service


@main.command()
@click.option("--init", is_flag=True,
              help=f"Write a config with fresh keys (--config, default ./{CONFIG_NAME}) and exit.")
@click.option("--listen", metavar="HOST:PORT", help="Address to serve on (127.0.0.1:8765).")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              help="The data directory (default ./apiwatch-data).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The config file (default ./{CONFIG_NAME} if present).")
def serve(init: bool, listen: str | None, data: Path | None, config_path: Path | None) -> None:
    """Run the collector: ingest, query API, ledger proofs, /healthz and /metrics."""
    if init:
        _write_init(config_path or Path(CONFIG_NAME))
        return
    try:
        config = _load(config_path, data, listen)
    except ApiwatchError as exc:
        fail(str(exc))
    host, port = split_listen(config.server.listen)
    tls = (config.server.tls_cert, config.server.tls_key)
    if any(tls) and not all(tls):
        fail("TLS needs both [server] tls_cert and tls_key")
    sock = _bind(host, port)
    try:
        collector = Collector.open(config, detect=True)
    except (ApiwatchError, OSError) as exc:
        sock.close()
        fail(f"cannot open {config.data_dir}: {exc}")
    # Imported late: the app pulls in Starlette, which `--init` does not need.
    from apiwatch.server.app import create_app  # noqa: PLC0415

    try:
        app = create_app(config, collector.pipeline, tick=collector.tick,
                         detection=collector.detection, forwarding=collector.forwarder)
        scheme = "https" if all(tls) else "http"
        click.echo(
            f"apiwatch collector on {scheme}://{config.server.listen} — data {config.data_dir}, "
            f"ledger {collector.ledger.settings.origin} ({collector.ledger.size} records)",
            err=True,
        )
        if collector.replayed:
            click.echo(f"recovered {collector.replayed} ledger records into the store", err=True)
        if not config.sources:
            click.echo(
                "no sources configured: every batch will be refused. Create a config with a "
                "source token: apiwatch serve --init", err=True,
            )
        server = uvicorn.Server(uvicorn.Config(
            app, host=host, port=port, ssl_certfile=tls[0] or None, ssl_keyfile=tls[1] or None,
            access_log=False, log_level="warning", timeout_graceful_shutdown=GRACEFUL_SECONDS,
        ))
        # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again with the
        # handler it found. A no-op handler makes that a normal return, so the data directory is
        # closed below (final checkpoint, snapshot) and the exit code is 0.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _ignore_signal)
        syslog = _start_syslog(config, collector)
        if syslog is not None:
            app.state.metrics.watch_syslog(syslog.receiver.source, syslog.receiver.stats)
        keep_freed_memory()  # `apiwatch serve` is a process of our own (see apiwatch.heap)
        try:
            with collector_gc():
                server.run(sockets=[sock])
        finally:
            if syslog is not None:
                syslog.stop()
    finally:
        collector.close()
        sock.close()
