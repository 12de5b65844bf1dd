"""FastAPI under uvicorn over real HTTP, events found at a running `apiwatch serve`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from capture_e2e import TOKEN, Collector, running_collector, uvicorn_server, wait_for
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from apiwatch.capture.asgi import ApiwatchMiddleware
from apiwatch.capture.config import Capture

SECRET_VALUE = "not-a-number-4111111111111111"
CHUNKS = [f"chunk-{i:03d}\n".encode() for i in range(50)]


class Item(BaseModel):
    name: str
    qty: int


class Login(BaseModel):
    user: str
    password: str


def make_app(capture: Capture) -> FastAPI:
    app = FastAPI()
    app.add_middleware(ApiwatchMiddleware, capture=capture)

    @app.post("/login")
    def login(body: Login) -> dict[str, str]:
        capture.log.login_failure(body.user, reason="bad_password")
        raise HTTPException(status_code=401, detail="bad credentials")

    @app.get("/admin/{section}")
    async def admin(section: str) -> dict[str, str]:
        raise HTTPException(status_code=403, detail="admins only")

    @app.post("/items")
    async def items(item: Item) -> dict[str, str]:
        return {"name": item.name}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for chunk in CHUNKS:
                yield chunk

        return StreamingResponse(body(), media_type="text/plain", status_code=503)

    return app


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Collector, str, Capture]]:
    base = tmp_path_factory.mktemp("fastapi")
    with running_collector(base / "data") as collector:
        capture = Capture("shop-api", instance="fastapi-1", collector=collector.url,
                          token=TOKEN, spool_dir=base / "spool", flush_interval=0.02,
                          ship_interval=0.02, fsync=False)
        with uvicorn_server(make_app(capture)) as url:
            yield collector, url, capture
        capture.close()


def one(collector: Collector, query: str) -> dict[str, object]:
    found = wait_for(lambda: collector.events(query), what=query)
    assert len(found) == 1, found
    event: dict[str, object] = found[0]
    return event


def test_failed_login_from_the_explicit_api(stack: tuple[Collector, str, Capture]) -> None:
    """A login failure reported by the app arrives with user, reason and the request's IP."""
    collector, url, _ = stack
    r = httpx.post(url + "/login", json={"user": "mallory", "password": "hunter2"},
                   headers={"X-Request-ID": "login-1"})
    assert r.status_code == 401
    event = one(collector, "event.action:authn_login_fail")
    assert event["user.name"] == "mallory"
    assert event["event.reason"] == "bad_password"
    assert event["source.ip"] == "127.0.0.1"
    assert event["http.request.id"] == "login-1"
    assert event["service.name"] == "shop-api"
    assert event["service.node.name"] == "fastapi-1"
    answer = one(collector, "event.action:authn_token_invalid http.request.id:login-1")
    assert answer["apiwatch.route"] == "/login"
    assert "hunter2" not in str(collector.events())


def test_403_with_route_template_and_spoofed_xff_ignored(
    stack: tuple[Collector, str, Capture],
) -> None:
    """A 403 is `authz_fail` with the FastAPI route; X-Forwarded-For from 127.0.0.1 is ignored."""
    collector, url, _ = stack
    r = httpx.get(url + "/admin/users", headers={"X-Forwarded-For": "6.6.6.6",
                                                  "X-API-Key": "key-of-the-attacker"})
    assert r.status_code == 403
    event = one(collector, "event.action:authz_fail")
    assert event["apiwatch.route"] == "/admin/{section}"
    assert event["url.path"] == "/admin/users"
    assert event["source.ip"] == "127.0.0.1"
    assert str(event["apiwatch.api_key.id"]).startswith("ak_")
    assert "key-of-the-attacker" not in str(event)


def test_422_names_the_fields_never_the_values(stack: tuple[Collector, str, Capture]) -> None:
    """A FastAPI validation error is logged with the failing field names, not their values."""
    collector, url, _ = stack
    r = httpx.post(url + "/items", json={"qty": SECRET_VALUE})
    assert r.status_code == 422
    assert SECRET_VALUE in r.text  # the client still gets FastAPI's own answer, untouched
    event = one(collector, "event.action:input_validation_fail")
    assert sorted(event["apiwatch.validation.fields"]) == ["body.name", "body.qty"]  # type: ignore[call-overload]
    assert event["http.response.status_code"] == 422
    assert SECRET_VALUE not in str(collector.events())


def test_streaming_response_arrives_intact(stack: tuple[Collector, str, Capture]) -> None:
    """A streamed 503 reaches the client chunk for chunk and is logged with its byte count."""
    collector, url, _ = stack
    with httpx.stream("GET", url + "/stream") as r:
        body = b"".join(r.iter_bytes())
    assert r.status_code == 503
    assert body == b"".join(CHUNKS)
    event = one(collector, "event.action:http_request http.response.status_code:503")
    assert event["http.response.body.bytes"] == len(body)


def test_ordinary_success_is_not_logged_by_default(stack: tuple[Collector, str, Capture]) -> None:
    """In failures-only mode a 200 produces no event."""
    collector, url, capture = stack
    before = capture.emitter.stats.emitted
    assert httpx.post(url + "/items", json={"name": "x", "qty": 1}).status_code == 200
    assert capture.emitter.stats.emitted == before
    assert collector.events("http.response.status_code:200") == []
