"""RED metrics of a FastAPI app under the middleware count a known mix of requests exactly."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
from fastapi import FastAPI, HTTPException
from prometheus_client.parser import text_string_to_metric_families

from apiwatch.capture.asgi import ApiwatchMiddleware
from apiwatch.capture.config import Capture
from apiwatch.capture.metrics import CaptureMetrics
from apiwatch.events import Event


class ListSink:
    """Keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def write(self, events: Sequence[Event]) -> None:
        """Keep `events`."""
        self.events.extend(events)

    def close(self) -> None:
        """Nothing to close."""


def _app(capture: Capture) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise HTTPException(403)
        if item_id == 500:
            raise HTTPException(500)
        return {"id": item_id}

    app.add_middleware(ApiwatchMiddleware, capture=capture)
    app.mount("/metrics", capture.metrics.asgi_app() if capture.metrics else FastAPI())
    return app


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


async def _traffic(app: FastAPI) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in ["/items/1", "/items/2", "/items/3", "/items/0", "/items/0",
                     "/items/500", "/items/x", "/nowhere"]:
            await client.get(path)
        return (await client.get("/metrics/")).text


def test_red_metrics_after_a_known_mix() -> None:
    """3 OK, 2 forbidden, 1 server error, 1 invalid id and 1 unmatched path are counted exactly."""
    capture = Capture("shop", sinks=[ListSink()], metrics=True)
    try:
        samples = _samples(asyncio.run(_traffic(_app(capture))))
    finally:
        capture.close()
    route = "/items/{item_id}"

    def requests(r: str, status_class: str) -> float:
        key = (("method", "GET"), ("route", r), ("status_class", status_class))
        return samples.get(("apiwatch_http_requests_total", key), 0.0)

    assert requests(route, "2xx") == 3
    assert requests(route, "4xx") == 3  # two 403 and one 422
    assert requests(route, "5xx") == 1
    assert requests("<unmatched>", "4xx") == 1
    count = ("apiwatch_http_request_duration_seconds_count", (("method", "GET"), ("route", route)))
    assert samples[count] == 7
    actions = {dict(k[1])["action"]: v for k, v in samples.items()
               if k[0] == "apiwatch_security_events_total"}
    assert actions == {"authz_fail": 2, "http_request": 1, "input_validation_fail": 1}


def test_an_explicit_metrics_object_is_shared() -> None:
    """A `CaptureMetrics` given to Capture is the one updated; without metrics there is none."""
    shared = CaptureMetrics()
    capture = Capture("shop", sinks=[ListSink()], metrics=shared)
    off = Capture("shop", sinks=[ListSink()])
    try:
        assert capture.metrics is shared
        assert off.metrics is None
    finally:
        capture.close()
        off.close()
