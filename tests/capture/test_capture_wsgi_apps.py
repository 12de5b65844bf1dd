"""Flask and Django under waitress over real HTTP, events found at a running `apiwatch serve`.

Both apps serve the same four endpoints, so one set of tests runs against each framework.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import django
import httpx
import pytest
from capture_e2e import TOKEN, Collector, running_collector, wait_for, waitress_server
from django.conf import settings
from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from django.http import JsonResponse, StreamingHttpResponse
from django.urls import path
from flask import Flask, Response, abort, jsonify, request

from apiwatch.capture.config import Capture
from apiwatch.capture.wsgi import instrument_flask

SECRET_VALUE = "value-that-must-not-be-logged"
CHUNKS = [f"part-{i:03d}\n".encode() for i in range(40)]
ERROR_BODY = {"detail": [{"loc": ["body", "qty"], "msg": "bad", "input": SECRET_VALUE}]}


def stream() -> Iterator[bytes]:
    yield from CHUNKS


def flask_app(capture: Capture) -> Any:
    app = Flask("shop")

    @app.post("/login")
    def login() -> Any:
        capture.log.login_failure(request.get_json()["user"], reason="unknown_user")
        return jsonify({"error": "bad credentials"}), 401

    @app.get("/admin/<section>")
    def admin(section: str) -> Any:
        abort(403)

    @app.post("/items")
    def items() -> Any:
        return jsonify(ERROR_BODY), 422

    @app.get("/stream")
    def streamed() -> Any:
        return Response(stream(), status=503, mimetype="text/plain")

    instrument_flask(app, capture)
    return app


def django_app(capture: Capture, tmp: Path) -> Any:
    def login(request: Any) -> Any:
        body = json.loads(request.body)
        authenticate(request, username=body["user"], password=body["password"])
        return JsonResponse({"error": "bad credentials"}, status=401)

    def admin(request: Any, section: str) -> Any:
        raise PermissionDenied("admins only")

    def items(request: Any) -> Any:
        return JsonResponse(ERROR_BODY, status=422)

    def streamed(request: Any) -> Any:
        return StreamingHttpResponse(stream(), status=503, content_type="text/plain")

    urls = ModuleType("capture_test_urls")  # a module object: Django caches resolvers by it
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("login", login), path("admin/<str:section>", admin), path("items", items),
        path("stream", streamed),
    ]
    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="test-only-" + "x" * 40,
        ROOT_URLCONF=urls, APIWATCH_CAPTURE=capture,
        MIDDLEWARE=["apiwatch.capture.django.ApiwatchMiddleware"],
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": str(tmp / "db.sqlite3")}},
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    )
    django.setup()
    call_command("migrate", verbosity=0)
    return get_wsgi_application()


@pytest.fixture(scope="module", params=["flask", "django"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Collector, str, str]]:
    base = tmp_path_factory.mktemp(request.param)
    with running_collector(base / "data") as collector:
        capture = Capture(f"{request.param}-api", collector=collector.url, token=TOKEN,
                          spool_dir=base / "spool", flush_interval=0.02, ship_interval=0.02,
                          fsync=False)
        app = flask_app(capture) if request.param == "flask" else django_app(capture, base)
        with waitress_server(app) as url:
            yield collector, url, request.param
        capture.close()


def one(collector: Collector, query: str) -> dict[str, Any]:
    found = wait_for(lambda: collector.events(query), what=query)
    assert len(found) == 1, found
    event: dict[str, Any] = found[0]
    return event


def test_failed_login(stack: tuple[Collector, str, str]) -> None:
    """A failed login arrives as `authn_login_fail` with the login name, a reason and the IP."""
    collector, url, _ = stack
    r = httpx.post(url + "/login", json={"user": "mallory", "password": "hunter2"})
    assert r.status_code == 401
    event = one(collector, "event.action:authn_login_fail")
    assert event["user.name"] == "mallory"
    assert event["event.reason"] == "unknown_user"
    assert event["source.ip"] == "127.0.0.1"
    assert "hunter2" not in str(collector.events())


def test_403_with_route_and_spoofed_xff_ignored(stack: tuple[Collector, str, str]) -> None:
    """A 403 is `authz_fail` with the framework's route; a spoofed X-Forwarded-For is ignored."""
    collector, url, framework = stack
    r = httpx.get(url + "/admin/users", headers={"X-Forwarded-For": "6.6.6.6"})
    assert r.status_code == 403
    event = one(collector, "event.action:authz_fail")
    assert event["apiwatch.route"] == {"flask": "/admin/<section>",
                                       "django": "/admin/<str:section>"}[framework]
    assert event["source.ip"] == "127.0.0.1"
    if framework == "django":
        assert event["event.reason"] == "admins only"


def test_422_names_the_fields_never_the_values(stack: tuple[Collector, str, str]) -> None:
    """A 422 carries the failing field names from the JSON error body, never its values."""
    collector, url, _ = stack
    assert httpx.post(url + "/items", json={"qty": SECRET_VALUE}).status_code == 422
    event = one(collector, "event.action:input_validation_fail")
    assert event["apiwatch.validation.fields"] == ["body.qty"]
    assert SECRET_VALUE not in str(collector.events())


def test_streaming_response_arrives_intact(stack: tuple[Collector, str, str]) -> None:
    """A streamed 503 reaches the client whole and is logged as `http_request`."""
    collector, url, _ = stack
    with httpx.stream("GET", url + "/stream") as r:
        body = b"".join(r.iter_bytes())
    assert (r.status_code, body) == (503, b"".join(CHUNKS))
    event = one(collector, "event.action:http_request")
    assert event["http.response.status_code"] == 503
