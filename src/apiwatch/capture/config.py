"""`Capture`: the one object an application configures, shared by every adapter.

```python
capture = Capture("shop-api", collector="http://127.0.0.1:8765", token=os.environ["TOKEN"])
app.add_middleware(ApiwatchMiddleware, capture=capture)          # FastAPI / Starlette
capture.log.login_failure("alice", reason="bad_password")       # anywhere in the app
```

With a collector URL, events go to a local spool (`spool_dir`) and a shipper sends them; other
sinks (a JSON-lines file, syslog, stdout) can be added or used alone. What a kill -9 can lose is
what is still on the emitter's queue: at most `queue_size` events, or `flush_interval` seconds'
worth at a steady rate (10,000 events / 0.2 s by default); the loss shows at the collector as
a sequence gap. Capture never raises into the application: every failure is counted in
`internal_errors` and logged on the `apiwatch.capture` logger.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from apiwatch.capture.api import SecurityLog
from apiwatch.capture.emitter import Emitter, SequenceReservation, Sink
from apiwatch.capture.http import Exchange, Record, action_for, event_from_record, exchange_record
from apiwatch.capture.metrics import CaptureMetrics
from apiwatch.capture.shipper import Shipper
from apiwatch.capture.sinks import SpoolSink
from apiwatch.capture.spool import Spool
from apiwatch.errors import ConfigError
from apiwatch.events import ClientIPResolver, Event
from apiwatch.sanitize import Sanitizer

log = logging.getLogger("apiwatch.capture")

#: A hook given the framework's own request (ASGI scope, WSGI environ, Django HttpRequest).
Hook = Callable[[Any], str | None]
SEQUENCE_FILE = "sequence"
DEFAULT_SPOOL_DIR = Path(".apiwatch-spool")


class Capture:
    """Service identity, sinks, client-IP policy, logging mode and hooks for one application.

    `collector` is the collector's base URL and `token` the source token it knows this
    application by. `trusted_proxies` are the CIDRs whose `proxy_header` is believed. In
    `access_log` mode every request is logged, each kept with probability `sample_rate`
    (401, 403, 400, 422, 429 and 5xx are always logged). `user_id` and `tenant` hooks name the
    caller of a request for its events.

    With `writer_process`, events are built, sanitized, encoded and written by a child process
    forked here (`apiwatch.capture.writer`): the app's process then only queues a small record
    per logged request. In the emitter's thread that work holds the GIL the app needs, which
    costs an access log of every request milliseconds of p99 latency; so `None`, the default,
    means on in `access_log` mode, off in failures-only mode (a few events a second), and off
    when other threads already run (a fork copies the locks they hold; an INFO line says so).
    True or False decides. The sinks then live in the child (a custom sink's state and counters
    are the child's); create the Capture at import, in the process that serves requests (not in
    a gunicorn `--preload` master).
    """

    def __init__(
        self,
        service: str,
        *,
        instance: str | None = None,
        collector: str | None = None,
        token: str | None = None,
        spool_dir: Path | str | None = None,
        spool_max_bytes: int = 256 * 1024 * 1024,
        sinks: Sequence[Sink] = (),
        trusted_proxies: Iterable[str] = (),
        proxy_header: str = "x-forwarded-for",
        access_log: bool = False,
        sample_rate: float = 1.0,
        user_id: Hook | None = None,
        tenant: Hook | None = None,
        sanitizer: Sanitizer | None = None,
        queue_size: int = 10_000,
        flush_interval: float = 0.2,
        ship_interval: float = 1.0,
        fsync: bool = True,
        metrics: bool | CaptureMetrics = False,
        writer_process: bool | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ConfigError(f"sample_rate must be within 0..1, got {sample_rate}")
        if (collector is None) != (token is None):
            raise ConfigError("a collector URL needs a source token, and a token a collector")
        self.service = service
        self.instance = instance or socket.gethostname()
        self.access_log = access_log
        self.sample_rate = sample_rate
        self.user_id = user_id
        self.tenant = tenant
        self.resolver = ClientIPResolver(trusted_proxies, header=proxy_header)
        self.sanitizer = sanitizer or Sanitizer()
        self.internal_errors = 0
        #: RED metrics the middleware updates (`apiwatch.capture.metrics`); None when off.
        self.metrics = CaptureMetrics() if metrics is True else (metrics or None)
        all_sinks = list(sinks)
        sequence = None
        self.spool: Spool | None = None
        self.shipper: Shipper | None = None
        if collector is not None and token is not None:
            directory = Path(spool_dir) if spool_dir is not None else DEFAULT_SPOOL_DIR
            self.spool = Spool(directory, max_bytes=spool_max_bytes, fsync=fsync)
            sequence = SequenceReservation(directory / SEQUENCE_FILE)
            all_sinks.insert(0, SpoolSink(self.spool))
            url = collector.rstrip("/") + "/v1/events"
            self.shipper = Shipper(self.spool, url, token, linger=ship_interval)
        if not all_sinks:
            raise ConfigError("capture needs a collector or at least one sink")
        if writer_process is None:
            writer_process = access_log and _may_fork()
        #: Whether a writer process builds and writes the events (see the class docstring).
        self.writer_process = writer_process
        self.emitter = Emitter(
            all_sinks,
            sequence=sequence,
            sanitizer=self.sanitizer,
            queue_size=queue_size,
            flush_interval=flush_interval,
            materialize=self._materialize,
            process=writer_process,
        )
        if self.shipper is not None:
            self.shipper.start()
        self.log = SecurityLog(self)

    def emit(self, event: Event) -> bool:
        """Stamp the service identity and queue `event`; False if it was dropped. Never blocks."""
        self._stamp(event)
        if self.metrics is not None:
            self.metrics.event(str(event.get("event.action", "")))
        return self.emitter.emit(event)

    def _stamp(self, event: Event) -> Event:
        event["service.name"] = self.service
        event["service.node.name"] = self.instance
        return event

    def _materialize(self, record: Record) -> Event:
        # On the emitter's thread: see `exchange_record` for why exchanges queue as records.
        return self._stamp(event_from_record(record, self.resolver, self.fingerprint))

    def fingerprint(self, key: str) -> tuple[str, str]:
        """The keyed fingerprint `(id, prefix)` that stands for an API key in events."""
        return self.sanitizer.fingerprint(key)

    def wants(self, status: int) -> str | None:
        """The action to log for `status` in this mode, sampling the access log; None to skip."""
        action = action_for(status, self.access_log)
        if (
            action == "http_request"
            and status < 500
            and self.sample_rate < 1.0
            and random.random() >= self.sample_rate  # noqa: S311 - sampling, not a secret
        ):
            return None
        return action

    def record(self, exchange: Exchange, action: str) -> None:
        """Queue the event of a finished exchange, built off the request path; failures are
        counted, not raised."""
        try:
            native = exchange.request.native
            user = tenant = None  # hooks are rare: no calls for them on every request
            if self.user_id is not None and exchange.user_id is None:
                user = _ask(self.user_id, native)
            if self.tenant is not None:
                tenant = _ask(self.tenant, native)
            record = exchange_record(exchange, action, user, tenant)
            if self.metrics is not None:
                self.metrics.event(action)
            self.emitter.emit(record)
        except Exception:  # telemetry fails open: the app's response is already on its way
            self.failed("could not record an HTTP exchange")

    def failed(self, what: str) -> None:
        """Count an internal error of capture and log it with its traceback."""
        self.internal_errors += 1
        log.warning("apiwatch: %s", what, exc_info=True)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, then stop shipping; unsent events stay in the spool."""
        self.emitter.close(timeout)
        if self.shipper is not None:
            self.shipper.stop(timeout)


def _may_fork() -> bool:
    """Whether the default writer process may be forked: no other thread runs, so the child
    cannot inherit a lock held by a thread that does not exist in it."""
    if threading.active_count() == 1:
        return True
    log.info("apiwatch: other threads are running, so the emitter's thread writes the access "
             "log; create the Capture at import for a writer process, or pass writer_process")
    return False


def _ask(hook: Hook, native: Any) -> str | None:
    value = hook(native)
    return str(value) if value else None
