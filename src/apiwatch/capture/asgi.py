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
    CURRENT_REQUEST,
    MAX_PEEK_BYTES,
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
        start_ns = time.time_ns()
        started = time.perf_counter_ns()
        client = scope.get("client")
        request = HttpRequest(
            scope.get("method", "GET"),
            scope.get("path", ""),
            client[0] if client else None,
            scope,
            headers=_headers,
            route=_route,
        )
        status = 0
        action: str | None = None
        bytes_in = 0
        bytes_out = 0
        peek: bytearray | None = None

        async def counting_receive() -> Message:
            nonlocal bytes_in
            message = await receive()
            if message["type"] == "http.request":
                bytes_in += len(message.get("body", b""))
            return message

        async def watching_send(message: Message) -> None:
            nonlocal status, action, bytes_out, peek
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                action = capture.wants(status)
                if status in VALIDATION_STATUSES and action is not None:
                    peek = bytearray()
            elif kind == "http.response.body":
                body = message.get("body", b"")
                bytes_out += len(body)
                if peek is not None and len(peek) < MAX_PEEK_BYTES:
                    peek += body[: MAX_PEEK_BYTES - len(peek)]
            await send(message)

        token = CURRENT_REQUEST.set(request)
        try:
            await self.app(scope, counting_receive, watching_send)
        except BaseException:
            if status == 0:  # the server answers 500 for an app that raised before responding
                status = 500
                action = capture.wants(status)
            raise
        finally:
            CURRENT_REQUEST.reset(token)
            if capture.metrics is not None:
                capture.metrics.observe(_route(scope), request.method, status,
                                        (time.perf_counter_ns() - started) / 1e9)
            if action is not None:
                fields = validation_fields(bytes(peek)) if peek else []
                capture.record(
                    Exchange(
                        request,
                        status,
                        start_ns,
                        time.perf_counter_ns() - started,
                        bytes_in,
                        bytes_out,
                        fields,
                    ),
                    action,
                )
            request.release()
