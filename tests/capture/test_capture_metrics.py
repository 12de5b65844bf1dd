"""RED metrics of FastAPI, Flask and Django apps under capture count a known mix exactly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from flask import Flask, abort
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from apiwatch.capture.asgi import ApiwatchMiddleware
from apiwatch.capture.config import Capture
from apiwatch.capture.http import CURRENT_REQUEST, HttpRequest
from apiwatch.capture.metrics import CaptureMetrics
from apiwatch.capture.wsgi import ApiwatchWSGI, instrument_flask
from apiwatch.events import Event

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

#: The mix sent to every app: 3 OK, 2 forbidden, 1 server error, 1 bad id, 1 unmatched path.
MIX = ["/items/1", "/items/2", "/items/3", "/items/0", "/items/0", "/items/500", "/items/x",
       "/nowhere"]


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


def _samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


async def _traffic(app: FastAPI) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in MIX:
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


def _requests(samples: Samples) -> dict[tuple[str, str], float]:
    """`(route, status_class)` to the count of GET requests."""
    counts: dict[tuple[str, str], float] = {}
    for (name, key), value in samples.items():
        labels = dict(key)
        if name == "apiwatch_http_requests_total" and labels["method"] == "GET":
            counts[labels["route"], labels["status_class"]] = value
    return counts


def _flask_app(capture: Capture, held: list[HttpRequest | None]) -> Flask:
    app = Flask("shop")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        held.append(CURRENT_REQUEST.get())
        if item_id == 0:
            capture.log.event("authz_fail", reason="explicit")
            abort(403)
        if item_id == 500:
            raise RuntimeError("boom")  # Flask answers 500 itself
        return {"id": item_id}

    instrument_flask(app, capture)
    return app


def test_flask_red_metrics_after_a_known_mix() -> None:
    """Under `instrument_flask` the mix is counted by Flask's rule; the environ is then dropped."""
    sink = ListSink()
    capture = Capture("shop", sinks=[sink], metrics=True)
    held: list[HttpRequest | None] = []
    try:
        assert capture.metrics is not None
        client = Client(_flask_app(capture, held))
        for path in MIX:
            client.get(path).close()
        text = Client(capture.metrics.wsgi_app()).get("/").get_data(as_text=True)
    finally:
        capture.close()
    samples = _samples(text)
    route = "/items/<int:item_id>"
    assert _requests(samples) == {(route, "2xx"): 3, (route, "4xx"): 2, (route, "5xx"): 1,
                                  ("<unmatched>", "4xx"): 2}
    count = ("apiwatch_http_request_duration_seconds_count", (("method", "GET"), ("route", route)))
    assert samples[count] == 6
    assert len(held) == 6
    assert all(r is not None and not isinstance(r.native, dict) for r in held)
    denied = [e for e in sink.events if e["event.action"] == "authz_fail"]
    assert [e.get("event.reason") for e in denied].count("explicit") == 2
    assert len(denied) == 4  # the explicit events kept the request's fields, route included
    assert {e["apiwatch.route"] for e in denied} == {route}


def test_a_raising_wsgi_app_counts_a_server_error() -> None:
    """A bare WSGI app that raises is one `5xx` of `<unmatched>` and its environ is dropped."""
    capture = Capture("shop", sinks=[ListSink()], metrics=True)
    held: list[HttpRequest | None] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        held.append(CURRENT_REQUEST.get())
        raise RuntimeError("boom")

    try:
        assert capture.metrics is not None
        client = Client(ApiwatchWSGI(app, capture))
        with pytest.raises(RuntimeError, match="boom"):  # the app's error passes through
            client.get("/anything")
        text = Client(capture.metrics.wsgi_app()).get("/").get_data(as_text=True)
    finally:
        capture.close()
    assert _requests(_samples(text)) == {("<unmatched>", "5xx"): 1}
    assert held[0] is not None
    assert not isinstance(held[0].native, dict)


def django_metrics_text() -> str:
    """Serve the mix through a Django app under the middleware; the exposed metrics text.

    Run in a child process (see the test below): Django's settings are configured once per
    process, and tests/capture/test_capture_wsgi_apps.py configures them for its own app.
    """
    import django  # noqa: PLC0415 - configured only in the child
    from django.conf import settings  # noqa: PLC0415
    from django.core.exceptions import PermissionDenied  # noqa: PLC0415
    from django.http import JsonResponse  # noqa: PLC0415
    from django.test import Client as DjangoClient  # noqa: PLC0415
    from django.urls import path  # noqa: PLC0415

    held: list[tuple[HttpRequest | None, Any]] = []

    def item(request: Any, item_id: int) -> Any:
        held.append((CURRENT_REQUEST.get(), request))
        if item_id == 0:
            raise PermissionDenied("admins only")
        if item_id == 500:
            raise RuntimeError("boom")  # Django answers 500 itself
        return JsonResponse({"id": item_id})

    urls = ModuleType("capture_metrics_urls")
    urls.urlpatterns = [path("items/<int:item_id>", item)]  # type: ignore[attr-defined]
    capture = Capture("shop", sinks=[ListSink()], metrics=True)
    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="test-only-" + "x" * 40,
        ROOT_URLCONF=urls, APIWATCH_CAPTURE=capture,
        MIDDLEWARE=["apiwatch.capture.django.ApiwatchMiddleware"],
    )
    django.setup()
    try:
        assert capture.metrics is not None
        client = DjangoClient(raise_request_exception=False)
        for url in MIX:
            client.get(url)
        # Each exchange dropped its Django request once over (the child exits 1 otherwise).
        assert [r is not None and r.native is not native for r, native in held] == [True] * 6
        return Client(capture.metrics.wsgi_app()).get("/").get_data(as_text=True)
    finally:
        capture.close()


def test_django_red_metrics_after_a_known_mix() -> None:
    """Under the Django middleware the mix is counted by the URL pattern's route exactly."""
    here = Path(__file__).parent
    child = subprocess.run(
        [sys.executable, "-c",
         "import test_capture_metrics as t; print(t.django_metrics_text(), end='')"],
        cwd=here, capture_output=True, text=True, timeout=60, check=True,
    )
    samples = _samples(child.stdout)
    route = "/items/<int:item_id>"
    assert _requests(samples) == {(route, "2xx"): 3, (route, "4xx"): 2, (route, "5xx"): 1,
                                  ("<unmatched>", "4xx"): 2}
    count = ("apiwatch_http_request_duration_seconds_count", (("method", "GET"), ("route", route)))
    assert samples[count] == 6
