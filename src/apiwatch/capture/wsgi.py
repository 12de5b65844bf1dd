"""WSGI middleware (PEP 3333; Flask, Bottle, any WSGI app): one event per logged exchange.

The response iterable is wrapped, not collected: chunks pass through as the app yields them and
the event is recorded when the server closes the iterable (so `event.duration` includes sending
the body). The route template is read from `environ["apiwatch.route"]`, which `instrument_flask`
fills from Flask's `request.url_rule`; without it the event's route is the normalized path and
the RED metrics' route is `<unmatched>` (`apiwatch.capture.metrics`, when `capture.metrics` is on).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from apiwatch.capture.config import Capture
from apiwatch.capture.http import (
    CURRENT_REQUEST,
    MAX_PEEK_BYTES,
    VALIDATION_STATUSES,
    Exchange,
    HttpRequest,
    validation_fields,
    wsgi_headers,
)

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

ROUTE_KEY = "apiwatch.route"


def _route(environ: Environ) -> str | None:
    route = environ.get(ROUTE_KEY)
    return route if isinstance(route, str) else None


class _Response:
    """The app's response iterable, counted (and for 400/422 peeked) on its way out."""

    def __init__(self, body: Iterable[bytes], finish: Callable[[int, bytes], None]) -> None:
        self._body = body
        self._finish = finish
        self.peek: bytearray | None = None
        self._sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._sent += len(chunk)
            if self.peek is not None and len(self.peek) < MAX_PEEK_BYTES:
                self.peek += chunk[: MAX_PEEK_BYTES - len(self.peek)]
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._finish(self._sent, bytes(self.peek or b""))


class ApiwatchWSGI:
    """`app.wsgi_app = ApiwatchWSGI(app.wsgi_app, capture)`, or wrap any WSGI callable."""

    def __init__(self, app: WSGIApp, capture: Capture) -> None:
        self.app = app
        self.capture = capture

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve the request through the app, measuring it; never changes what the app does."""
        capture = self.capture
        start_ns = time.time_ns()
        started = time.perf_counter_ns()
        request = HttpRequest(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
            environ.get("REMOTE_ADDR") or None,
            environ,
            headers=wsgi_headers,
            route=_route,
        )
        seen: dict[str, Any] = {"status": 0, "action": None}

        def watching_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            code = int(status[:3]) if status[:3].isdigit() else 0
            seen["status"] = code
            seen["action"] = capture.wants(code)
            return start_response(status, headers, exc_info)

        def finish(sent: int, peek: bytes) -> None:
            action = seen["action"]
            elapsed = time.perf_counter_ns() - started
            if capture.metrics is not None:
                capture.metrics.observe(_route(environ), request.method, seen["status"],
                                        elapsed / 1e9)
            if action is not None:
                length = environ.get("CONTENT_LENGTH", "")
                exchange = Exchange(
                    request,
                    seen["status"],
                    start_ns,
                    elapsed,
                    int(length) if length.isdigit() else 0,
                    sent,
                    validation_fields(peek) if peek else [],
                )
                capture.record(exchange, action)
            # As in the ASGI middleware: the exchange is over, the environ need not outlive it.
            request.release()

        token = CURRENT_REQUEST.set(request)
        try:
            body = self.app(environ, watching_start_response)
        except BaseException:
            seen["status"] = 500
            seen["action"] = capture.wants(500)
            finish(0, b"")
            raise
        finally:
            CURRENT_REQUEST.reset(token)
        response = _Response(body, finish)
        if seen["status"] in VALIDATION_STATUSES and seen["action"] is not None:
            response.peek = bytearray()
        return response


def instrument_flask(app: Any, capture: Capture) -> None:
    """Capture a Flask app: wrap its `wsgi_app` and record its route templates.

    Flask's public hooks are used (`wsgi_app`, the `request_started` signal, sent after URL
    matching and before any `before_request` function can abort), not monkeypatching.
    """
    from flask import request, request_started  # noqa: PLC0415 - Flask is optional

    def remember_route(sender: Any, **extra: Any) -> None:
        rule = request.url_rule
        if rule is not None:
            request.environ[ROUTE_KEY] = rule.rule

    request_started.connect(remember_route, app, weak=False)
    app.wsgi_app = ApiwatchWSGI(app.wsgi_app, capture)
