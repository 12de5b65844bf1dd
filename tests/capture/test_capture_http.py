"""The framework-free part of capture: which statuses are logged and what their events hold."""

from __future__ import annotations

import gc
from collections.abc import Mapping

import orjson
import pytest

from apiwatch.capture.http import (
    Exchange,
    HttpRequest,
    action_for,
    api_key,
    build_event,
    event_from_record,
    exchange_record,
    header_map,
    request_ids,
    validation_fields,
    wsgi_headers,
)
from apiwatch.events import ClientIPResolver, Event


def fingerprint(key: str) -> tuple[str, str]:
    return f"ak_{len(key):016x}", key[:6] if len(key) >= 20 else ""


def request(headers: Mapping[str, str], route: str | None = None, peer: str = "10.0.0.9") -> (
    HttpRequest
):
    return HttpRequest("POST", "/users/42/orders", peer, None,
                       headers=lambda _: dict(headers), route=lambda _: route)


def event_for(status: int, headers: Mapping[str, str] | None = None, **kw: object) -> Event:
    exchange = Exchange(request(headers or {}), status, 1_700_000_000_000_000_000, 1234, 10, 20)
    for name, value in kw.items():
        setattr(exchange, name, value)
    action = action_for(status, access_log=True)
    assert action is not None
    return build_event(exchange, action, ClientIPResolver([]), fingerprint)


class TestActionFor:
    @pytest.mark.parametrize(
        ("status", "action"),
        [(401, "authn_token_invalid"), (403, "authz_fail"), (400, "input_validation_fail"),
         (422, "input_validation_fail"), (429, "excess_rate_limit_exceeded"),
         (500, "http_request"), (503, "http_request")],
    )
    def test_security_statuses_are_logged_by_default(self, status: int, action: str) -> None:
        """401, 403, 400, 422, 429 and 5xx map to their vocabulary actions without access log."""
        assert action_for(status, access_log=False) == action

    @pytest.mark.parametrize("status", [200, 201, 204, 301, 404, 405])
    def test_other_statuses_only_in_access_log_mode(self, status: int) -> None:
        """Ordinary statuses are skipped by default and are `http_request` in access-log mode."""
        assert action_for(status, access_log=False) is None
        assert action_for(status, access_log=True) == "http_request"


class TestRequestIds:
    def test_traceparent_gives_the_trace_id(self) -> None:
        """A valid W3C traceparent becomes `trace.id`."""
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        assert request_ids({"traceparent": tp}) == {"trace.id": "4bf92f3577b34da6a3ce929d0e0e4736"}

    def test_all_zero_trace_id_falls_back_to_request_id(self) -> None:
        """An invalid (all-zero) trace id is ignored in favour of X-Request-ID."""
        tp = "00-" + "0" * 32 + "-00f067aa0ba902b7-01"
        ids = request_ids({"traceparent": tp, "x-request-id": "req-7"})
        assert ids == {"http.request.id": "req-7"}

    def test_odd_request_id_is_replaced_by_a_fresh_one(self) -> None:
        """An X-Request-ID with spaces or newlines is not trusted; a UUIDv7 is generated."""
        ids = request_ids({"x-request-id": "a b\nc"})
        assert len(ids["http.request.id"]) == 36
        assert ids["http.request.id"][14] == "7"


class TestApiKey:
    @pytest.mark.parametrize(
        ("headers", "key"),
        [({"x-api-key": "k1"}, "k1"), ({"authorization": "Bearer tok"}, "tok"),
         ({"authorization": "ApiKey abc"}, "abc"), ({"authorization": "Basic dXNlcg=="}, None),
         ({}, None)],
    )
    def test_key_is_found_in_the_usual_headers(
        self, headers: dict[str, str], key: str | None
    ) -> None:
        """X-API-Key and Authorization Bearer/ApiKey carry keys; Basic credentials are not."""
        assert api_key(headers) == key

    def test_event_has_the_fingerprint_never_the_key(self) -> None:
        """The event carries `apiwatch.api_key.id` and no byte of the secret beyond its prefix."""
        secret = "sk_live_0123456789abcdefghij"
        event = event_for(401, {"authorization": f"Bearer {secret}"})
        assert event["apiwatch.api_key.id"] == fingerprint(secret)[0]
        assert secret not in orjson.dumps(event).decode()


class TestValidationFields:
    def test_fastapi_body_gives_dotted_names_without_values(self) -> None:
        """`detail[].loc` become dotted field names; `input` values are never returned."""
        body = orjson.dumps({"detail": [
            {"type": "missing", "loc": ["body", "email"], "msg": "x", "input": "secret@x.io"},
            {"type": "int", "loc": ["body", "items", 0, "qty"], "input": "9999"},
            {"type": "missing", "loc": ["body", "email"], "input": None},
        ]})
        assert validation_fields(body) == ["body.email", "body.items.0.qty"]

    @pytest.mark.parametrize(
        "body", [b"", b"not json", b"[1]", b'{"detail": "Bad"}', b'{"detail": [{"loc": {}}]}',
                 b'{"detail": [{"loc": ["a"', b'{"detail": [{"loc": [{"x": 1}]}]}'],
    )
    def test_other_bodies_give_no_names(self, body: bytes) -> None:
        """Truncated, foreign or malformed bodies give no field names and never raise."""
        assert validation_fields(body) == []


class TestBuildEvent:
    def test_exchange_fields(self) -> None:
        """The event has method, path, guessed route, status, duration, bytes and a request id."""
        event = event_for(500, {"user-agent": "curl/8"})
        assert event["event.action"] == "http_request"
        assert event["event.outcome"] == "failure"
        assert event["http.request.method"] == "POST"
        assert event["url.path"] == "/users/42/orders"
        assert event["apiwatch.route"] == "/users/{int}/orders"
        assert event["http.response.status_code"] == 500
        assert event["event.duration"] == 1234
        assert event["http.request.body.bytes"] == 10
        assert event["http.response.body.bytes"] == 20
        assert event["source.ip"] == "10.0.0.9"
        assert event["user_agent.original"] == "curl/8"
        assert event["@timestamp"].startswith("2023-11-14T22:13:20")
        assert "http.request.id" in event

    def test_framework_route_wins(self) -> None:
        """A route template given by the framework replaces the guessed one."""
        exchange = Exchange(request({}, route="/users/{user_id}/orders"), 403, 0, 1)
        event = build_event(exchange, "authz_fail", ClientIPResolver([]), fingerprint)
        assert event["apiwatch.route"] == "/users/{user_id}/orders"

    def test_401_reason_says_whether_credentials_were_presented(self) -> None:
        """401 without credentials and 401 with a rejected key carry different reasons."""
        assert event_for(401)["event.reason"] == "no credentials presented"
        assert event_for(401, {"x-api-key": "k"})["event.reason"] == "credentials rejected"

    def test_access_log_success_outcome(self) -> None:
        """A 200 in access-log mode is `http_request` with outcome success."""
        assert event_for(200)["event.outcome"] == "success"

    def test_spoofed_forwarded_for_from_untrusted_peer_is_ignored(self) -> None:
        """X-Forwarded-For sent by an untrusted peer does not change `source.ip`."""
        assert event_for(403, {"x-forwarded-for": "1.2.3.4"})["source.ip"] == "10.0.0.9"

    def test_request_fields_are_computed_once(self) -> None:
        """Two events of one request (explicit and middleware) share one generated request id."""
        req = request({})
        resolver = ClientIPResolver([])
        first = req.fields(resolver, fingerprint)["http.request.id"]
        assert req.fields(resolver, fingerprint)["http.request.id"] == first


def test_wsgi_headers_from_environ() -> None:
    """HTTP_* keys and the content headers become lower-case dashed names."""
    environ = {"HTTP_X_FORWARDED_FOR": "1.1.1.1", "CONTENT_TYPE": "text/plain",
               "CONTENT_LENGTH": "", "PATH_INFO": "/"}
    assert wsgi_headers(environ) == {"x-forwarded-for": "1.1.1.1", "content-type": "text/plain"}


def test_released_request_holds_no_framework_object_and_still_builds() -> None:
    """Once its exchange is over a request drops the scope (a GC cycle under load); an explicit
    event raised later still builds, without the request's headers."""
    scope = {"headers": [(b"user-agent", b"curl/8")]}
    req = HttpRequest("GET", "/a", "10.0.0.1", scope,
                      headers=lambda s: {k.decode(): v.decode() for k, v in s["headers"]},
                      route=lambda s: "/a")
    req.release()
    assert req.native is not scope
    fields = req.fields(ClientIPResolver([]), fingerprint)
    assert fields["url.path"] == "/a"
    assert fields["source.ip"] == "10.0.0.1"
    assert "user_agent.original" not in fields


def test_asgi_header_pairs_become_a_map_with_repeats_joined() -> None:
    """ASGI header pairs are read as lower-case names; a repeated header keeps every value, in
    order, as RFC 9110 allows (so X-Forwarded-For hops are not lost)."""
    raw = ((b"X-Forwarded-For", b"1.1.1.1"), (b"user-agent", b"curl/8"),
           (b"x-forwarded-for", b"2.2.2.2"))
    assert header_map(raw) == {"x-forwarded-for": "1.1.1.1,2.2.2.2", "user-agent": "curl/8"}


def test_exchange_record_builds_the_same_event_later() -> None:
    """A recorded exchange, built after its request was released, gives the event the request
    would have given at once: same fields, same request id as an explicit event of the request."""
    scope = {"headers": [(b"user-agent", b"curl/8"), (b"x-api-key", b"k" * 24)]}
    req = HttpRequest("GET", "/a/1", "10.0.0.1", scope, headers=lambda s: tuple(s["headers"]),
                      route=lambda s: "/a/{id}")
    resolver = ClientIPResolver([])
    explicit_id = req.fields(resolver, fingerprint)["http.request.id"]
    record = exchange_record(Exchange(req, 403, 1_700_000_000_000_000_000, 5, 0, 2), "authz_fail",
                             "u-1", "acme")
    req.release()
    event = event_from_record(record, resolver, fingerprint)
    assert event["http.request.id"] == explicit_id
    assert (event["apiwatch.route"], event["url.path"]) == ("/a/{id}", "/a/1")
    assert event["user_agent.original"] == "curl/8"
    assert event["apiwatch.api_key.id"] == fingerprint("k" * 24)[0]
    assert (event["user.id"], event["apiwatch.tenant"]) == ("u-1", "acme")
    assert event["http.response.status_code"] == 403


def test_queued_record_is_not_tracked_by_the_garbage_collector() -> None:
    """A queued exchange holds only strings, numbers and bytes: the collector stops tracking it
    at its first young collection, so a queue of them never grows the old generations (whose
    full collections cost milliseconds of latency in a large app)."""
    scope = {"headers": [(b"user-agent", b"curl/8")]}
    req = HttpRequest("GET", "/a", "10.0.0.1", scope, headers=lambda s: tuple(s["headers"]),
                      route=lambda s: "/a")
    record = exchange_record(Exchange(req, 200, 0, 5, 0, 2), "http_request", None, None)
    gc.collect()
    assert not gc.is_tracked(record)
