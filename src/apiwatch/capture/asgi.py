"""Pure ASGI middleware (FastAPI, Starlette, any ASGI 3 app): one event per logged exchange.

`send` and `receive` are wrapped only to count bytes and read the status; nothing is buffered,
so streaming responses flow as the app sends them. The body of a 400/422 JSON response is copied
(at most `MAX_PEEK_BYTES`) for the names of the failing fields. WebSocket and lifespan scopes
are passed through untouched. The route template is Starlette's matched `scope["route"].path`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from apiwatch.capture.config import Capture
from apiwatch.capture.http import (
    _RELEASED,
    _UNREAD,
    CURRENT_REQUEST,
    MAX_PEEK_BYTES,
    MIN_LOGGED_STATUS,
    VALIDATION_STATUSES,
    Exchange,
    HttpRequest,
    RawHeaders,
    validation_fields,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _headers(scope: Scope) -> RawHeaders:
    return tuple(scope.get("headers", ()))


def _route(scope: Scope) -> str | None:
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else None


class _AsgiRequest(HttpRequest):
    """The request in flight and what the wrapped `receive` and `send` saw of it.

    One object with two bound methods rather than two closures over their cells: the
    middleware keeps 7 GC-tracked objects alive per request in flight instead of 15. With tens
    of requests in flight those objects decide how often the live set swings past the young
    generation's threshold; each young collection promotes what is in flight, and enough of
    that triggers full collections of the app's whole heap, tens of milliseconds under FastAPI.

    Most requests log nothing, and what this object does on their path is counted in
    instructions (bench/middleware_bench.py --instructions): it calls as few Python functions
    as it can, since each call costs more than the work it does here.
    """

    __slots__ = ("action", "bytes_in", "bytes_out", "capture", "peek", "receive", "send",
                 "status")

    def __init__(self, scope: Scope, capture: Capture, receive: Receive, send: Send) -> None:
        # HttpRequest.__init__'s fields, set here rather than by calling it: a call less per
        # request (2k instructions, 0.5% of a FastAPI request). Keep the two in step.
        client = scope.get("client")
        self.method = scope.get("method", "GET")
        self.path = scope.get("path", "")
        self.peer = client[0] if client else None
        self.native = scope
        self.reason = None
        self._raw_headers = _headers
        self._route = _route
        self._raw = None
        self._headers = None
        self._route_value = _UNREAD
        self._fields = None
        # Its own.
        self.capture = capture
        self.receive = receive
        self.send = send
        self.status = 0
        self.action: str | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.peek: bytearray | None = None

    async def counting_receive(self) -> Message:
        """The server's `receive`, counting request body bytes."""
        message = await self.receive()
        if message["type"] == "http.request":
            self.bytes_in += len(message.get("body", b""))
        return message

    def watching_send(self, message: Message) -> Awaitable[None]:
        """The server's `send`, reading the status and, when the exchange is logged, counting
        (and for a validation error, copying the start of) the response body.

        A function returning the server's awaitable, not a coroutine awaiting it: no coroutine
        and frame of its own per message. The body of an exchange that is not logged is not
        looked at; nor is `wants` asked about a status that only the access log logs, when it
        is off. Together about 4k instructions per request, 1% of a FastAPI request.
        """
        if self.status:  # the response has started
            if self.action is not None and message["type"] == "http.response.body":
                body = message.get("body", b"")
                self.bytes_out += len(body)
                peek = self.peek
                if peek is not None and len(peek) < MAX_PEEK_BYTES:
                    peek += body[: MAX_PEEK_BYTES - len(peek)]
        elif message["type"] == "http.response.start":
            status = self.status = message["status"]
            capture = self.capture
            if status >= MIN_LOGGED_STATUS or capture.access_log:
                action = self.action = capture.wants(status)
                if status in VALIDATION_STATUSES and action is not None:
                    self.peek = bytearray()
        return self.send(message)

    def release(self) -> None:
        """`HttpRequest.release`, and also drop the server's callables: the request may outlive
        the exchange. (Its one line repeated here: one call per request, not two; 1k
        instructions.)"""
        self.native = _RELEASED
        self.receive = self.send = _released


async def _released(*args: Any) -> Any:
    raise RuntimeError("the exchange is over")


class ApiwatchMiddleware:
    """`app.add_middleware(ApiwatchMiddleware, capture=capture)`, or wrap any ASGI app."""

    def __init__(self, app: ASGIApp, capture: Capture) -> None:
        self.app = app
        self.capture = capture

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request through the app, measuring it; never changes what the app does."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        capture = self.capture
        started = time.perf_counter_ns()
        request = _AsgiRequest(scope, capture, receive, send)
        token = CURRENT_REQUEST.set(request)
        try:
            await self.app(scope, request.counting_receive, request.watching_send)
        except BaseException:
            if request.status == 0:  # the server answers 500 for an app that raised first
                request.status = 500
                request.action = capture.wants(500)
            raise
        finally:
            CURRENT_REQUEST.reset(token)
            elapsed = time.perf_counter_ns() - started
            if capture.metrics is not None:
                capture.metrics.observe(_route(scope), request.method, request.status,
                                        elapsed / 1e9)
            if request.action is not None:
                peek = request.peek
                capture.record(
                    Exchange(
                        request,
                        request.status,
                        time.time_ns() - elapsed,  # the start, read only for a logged exchange
                        elapsed,
                        request.bytes_in,
                        request.bytes_out,
                        validation_fields(bytes(peek)) if peek else [],
                    ),
                    request.action,
                )
            request.release()
