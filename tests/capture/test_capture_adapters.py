"""Adapters in memory: pass-through guarantees, hooks, sampling, the explicit API, log routing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import pytest
import structlog
from capture_e2e import drained, memory_capture

from apiwatch.capture.asgi import ApiwatchMiddleware
from apiwatch.capture.emitter import drop_report
from apiwatch.capture.logging import CaptureHandler, CaptureProcessor
from apiwatch.capture.wsgi import ApiwatchWSGI
from apiwatch.events import lookup
from apiwatch.formats.ecs import encode_ecs
from apiwatch.formats.jsonl import decode_line

Message = dict[str, Any]


def run_asgi(app: Any, scope: dict[str, Any], body: bytes = b"") -> list[Message]:
    """Call an ASGI app once; returns the messages it sent."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def http_scope(path: str = "/x", **extra: Any) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": path, "headers": [],
            "client": ("192.0.2.1", 5000), **extra}


def responder(status: int, chunks: Iterable[bytes] = (b"ok",)) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": status, "headers": []})
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


class TestAsgi:
    def test_websocket_scope_is_passed_through_untouched(self) -> None:
        """A websocket scope reaches the app with the server's own receive and send."""
        capture, sink = memory_capture()
        seen: list[tuple[Any, Any]] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append((receive, send))

        async def receive() -> Message:
            return {}

        async def send(message: Any) -> None:
            pass

        asyncio.run(ApiwatchMiddleware(app, capture)({"type": "websocket"}, receive, send))
        assert seen == [(receive, send)]
        assert drained(capture, sink) == []

    def test_chunks_are_forwarded_as_sent(self) -> None:
        """Streaming chunks are forwarded one message each, unbuffered, and bytes are counted."""
        capture, sink = memory_capture()
        chunks = [b"a" * 10, b"b" * 20, b"c" * 30]
        sent = run_asgi(ApiwatchMiddleware(responder(500, chunks), capture), http_scope(),
                        body=b"12345")
        assert [m.get("body") for m in sent[1:]] == [*chunks, b""]
        (event,) = drained(capture, sink)
        assert event["http.response.body.bytes"] == 60
        assert event["http.request.body.bytes"] == 5

    def test_app_exception_is_logged_as_500_and_reraised(self) -> None:
        """An app that raises before responding is logged as a 500; the error still propagates."""
        capture, sink = memory_capture()

        async def broken(scope: Any, receive: Any, send: Any) -> None:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            run_asgi(ApiwatchMiddleware(broken, capture), http_scope())
        (event,) = drained(capture, sink)
        assert event["http.response.status_code"] == 500

    def test_capture_failure_never_reaches_the_app(self) -> None:
        """A hook that raises is counted as an internal error; the response is unaffected."""
        def bad_hook(native: Any) -> str:
            raise ValueError("hook bug")

        capture, sink = memory_capture(user_id=bad_hook)
        sent = run_asgi(ApiwatchMiddleware(responder(403), capture), http_scope())
        assert sent[0]["status"] == 403
        assert capture.internal_errors == 1
        assert drained(capture, sink) == []

    def test_hooks_name_user_and_tenant(self) -> None:
        """The user id and tenant hooks receive the ASGI scope and fill `user.id`/tenant."""
        capture, sink = memory_capture(user_id=lambda scope: scope["state"]["user"],
                                       tenant=lambda scope: "acme")
        run_asgi(ApiwatchMiddleware(responder(401), capture),
                 http_scope(state={"user": "u-7"}))
        (event,) = drained(capture, sink)
        assert (event["user.id"], event["apiwatch.tenant"]) == ("u-7", "acme")

    def test_explicit_event_and_exchange_share_the_request_id(self) -> None:
        """An event the app raises while serving a request and the middleware's event of that
        request carry the same generated request id and route."""
        capture, sink = memory_capture()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            capture.log.access_denied("invoice:1", "invoice.read")
            await responder(403)(scope, receive, send)

        run_asgi(ApiwatchMiddleware(app, capture), http_scope("/invoices/1"))
        explicit, exchange = drained(capture, sink)
        assert explicit["http.request.id"] == exchange["http.request.id"]
        assert explicit["apiwatch.route"] == exchange["apiwatch.route"]

    def test_trusted_proxy_header_is_believed(self) -> None:
        """Behind a trusted proxy the client is the address the proxy appended."""
        capture, sink = memory_capture(trusted_proxies=["192.0.2.0/24"])
        scope = http_scope(headers=[(b"x-forwarded-for", b"203.0.113.5")])
        run_asgi(ApiwatchMiddleware(responder(429), capture), scope)
        (event,) = drained(capture, sink)
        assert event["source.ip"] == "203.0.113.5"
        assert event["event.action"] == "excess_rate_limit_exceeded"

    @pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (1.0, 20)])
    def test_access_log_sampling(self, rate: float, expected: int) -> None:
        """Access-log mode keeps each 200 with the sample rate, but 403s always."""
        # The list sink must be written in this process, not by a writer process.
        capture, sink = memory_capture(access_log=True, sample_rate=rate, writer_process=False)
        for status in [200] * 20 + [403]:
            run_asgi(ApiwatchMiddleware(responder(status), capture), http_scope())
        actions = [e["event.action"] for e in drained(capture, sink)]
        assert actions.count("http_request") == expected
        assert actions.count("authz_fail") == 1


class TestWsgi:
    def test_iterable_is_streamed_and_closed(self) -> None:
        """Chunks pass through one by one, the app's iterable is closed, then the event is made."""
        capture, sink = memory_capture()
        closed: list[bool] = []

        class Body:
            def __iter__(self) -> Any:
                yield b"x" * 7
                yield b"y" * 3

            def close(self) -> None:
                closed.append(True)

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            start_response("502 Bad Gateway", [])
            return Body()

        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/up", "REMOTE_ADDR": "192.0.2.2",
                   "CONTENT_LENGTH": "4"}
        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            return None

        result = ApiwatchWSGI(app, capture)(environ, start_response)
        assert list(result) == [b"x" * 7, b"y" * 3]
        assert drained(capture, sink) == []  # not before the server closes the response
        result.close()  # type: ignore[attr-defined]
        assert closed == [True]
        (event,) = drained(capture, sink)
        assert (event["http.response.status_code"], event["http.response.body.bytes"]) == (502, 10)
        assert event["http.request.body.bytes"] == 4


class TestExplicitApi:
    def test_lifecycle_events(self) -> None:
        """Key, role, MFA and data-access calls emit their vocabulary actions; keys only as ids."""
        capture, sink = memory_capture()
        secret = "sk_live_abcdefghijklmnopqrstuvwxyz"
        capture.log.key_created(secret, user="admin")
        capture.log.key_revoked(secret, user="admin")
        capture.log.role_changed("bob", ["user"], ["admin", "user"], user="admin")
        capture.log.mfa_disabled("bob", user="admin")
        capture.log.data_access("invoice", range(150), user="bob")
        capture.log.access_denied("invoice:9", "invoice.read", user="bob")
        events = drained(capture, sink)
        assert [e["event.action"] for e in events] == [
            "authn_token_created", "authn_token_revoked", "authz_change", "user_updated",
            "data_access", "authz_fail"]
        assert events[0]["apiwatch.api_key.id"] == events[1]["apiwatch.api_key.id"]
        assert secret not in str(events)
        assert events[2]["user.changes.roles"] == ["admin", "user"]
        assert events[3]["event.reason"] == "mfa_disabled"
        assert len(events[4]["apiwatch.object.ids"]) == 100
        assert events[4]["apiwatch.object.count"] == 150
        assert events[5]["apiwatch.permission"] == "invoice.read"
        assert all(e["service.name"] == "test-api" for e in events)

    def test_unknown_action_is_counted_not_raised(self) -> None:
        """An action outside the vocabulary is an internal error, never an exception in the app."""
        capture, sink = memory_capture()
        capture.log.event("no_such_action")
        assert capture.internal_errors == 1
        assert drained(capture, sink) == []

    def test_async_code_can_call_it(self) -> None:
        """The explicit API is callable from a coroutine without awaiting or blocking."""
        capture, sink = memory_capture()

        async def handler() -> None:
            capture.log.login_success("alice")

        asyncio.run(handler())
        assert [e["user.name"] for e in drained(capture, sink)] == ["alice"]


class TestLogRouting:
    def test_stdlib_records_become_events(self) -> None:
        """A log record becomes `app_log` (or its named action) with level, logger and fields."""
        capture, sink = memory_capture()
        logger = logging.getLogger("shop.orders")
        handler = CaptureHandler(capture)
        logger.addHandler(handler)
        try:
            logger.warning("order %s refused", 42, extra={"user.id": "u-1", "other": "x"})
            logger.error("denied", extra={"event.action": "authz_fail"})
            logging.getLogger("apiwatch.capture").error("own record")
        finally:
            logger.removeHandler(handler)
        first, second = drained(capture, sink)
        assert first["event.action"] == "app_log"
        assert (first["message"], first["log.level"], first["log.logger"]) == (
            "order 42 refused", "warn", "shop.orders")
        assert first["user.id"] == "u-1"
        assert "other" not in first
        assert second["event.action"] == "authz_fail"

    def test_structlog_processor_passes_the_event_on(self) -> None:
        """The structlog processor emits an event and returns the event dict unchanged."""
        capture, sink = memory_capture()
        processor = CaptureProcessor(capture)
        event_dict = {"event": "login refused", "level": "warning", "user.name": "eve",
                      "action": "authn_login_fail"}
        assert processor(structlog.get_logger(), "warning", dict(event_dict)) == event_dict
        (event,) = drained(capture, sink)
        assert (event["event.action"], event["user.name"], event["message"]) == (
            "authn_login_fail", "eve", "login refused")


def test_drop_report_and_app_log_are_vocabulary_actions() -> None:
    """The capture side's own actions are in the vocabulary, so the collector accepts them."""
    event = decode_line(encode_ecs(drop_report(3, "spool full"))[:-1], 1)
    assert (event["event.action"], event["apiwatch.dropped"]) == ("log_events_dropped", 3)
    assert lookup("app_log").origin == "apiwatch"
