"""One finished HTTP exchange as an event, whatever framework served it.

The adapters (`asgi`, `wsgi`, `django`) measure an exchange and hand it here; this module decides
whether the status is logged and builds the event. By default only the statuses a monitor needs
are logged (401, 403, 400, 422, 429, 5xx); the access-log mode logs every request, sampled.

The request id is the W3C Trace Context `traceparent` trace id (`trace.id`), else the caller's
`X-Request-ID` (`http.request.id`), else a fresh UUIDv7. API keys are never logged: only their
keyed fingerprint (`apiwatch.api_key.id`). Validation failures carry the NAMES of the failing
fields, read from a FastAPI/pydantic error body (`detail[].loc`), never their values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson

from apiwatch.events import ClientIPResolver, Event, http_outcome, make_event, normalize_route
from apiwatch.events.ids import uuid7

#: The action of each status logged in every mode; 5xx and access-log events are `http_request`.
STATUS_ACTIONS: Mapping[int, str] = {
    400: "input_validation_fail",
    401: "authn_token_invalid",
    403: "authz_fail",
    422: "input_validation_fail",
    429: "excess_rate_limit_exceeded",
}
#: Statuses below this one are logged only in the access-log mode (see `action_for`).
MIN_LOGGED_STATUS = min(*STATUS_ACTIONS, 500)
#: Statuses whose JSON body is read (a bounded copy) for the names of failing fields.
VALIDATION_STATUSES = frozenset({400, 422})
#: Bytes of a validation error body kept for parsing; the rest passes through unread.
MAX_PEEK_BYTES = 64 * 1024
#: Field names kept from one validation error body.
MAX_FIELDS = 50

# W3C Trace Context: version "00", 32-hex trace id (not all zero), 16-hex parent id, flags.
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_REQUEST_ID = re.compile(r"[\w.:@/+=-]{1,128}", re.ASCII)
_KEY_SCHEMES = ("bearer ", "apikey ")

#: An API key to its `(id, prefix)` fingerprint (`Sanitizer.fingerprint`).
Fingerprint = Callable[[str], tuple[str, str]]


def action_for(status: int, access_log: bool) -> str | None:
    """The event action for a response `status`; None when the status is not logged."""
    action = STATUS_ACTIONS.get(status)
    if action is not None:
        return action
    if status >= 500 or access_log:
        return "http_request"
    return None


def request_ids(headers: Mapping[str, str]) -> dict[str, str]:
    """`trace.id` from `traceparent`, else `http.request.id` from X-Request-ID or a new UUIDv7."""
    parent = headers.get("traceparent", "").strip().lower()
    m = _TRACEPARENT.fullmatch(parent)
    if m and m.group(1) != "0" * 32:
        return {"trace.id": m.group(1)}
    given = headers.get("x-request-id", "").strip()
    if _REQUEST_ID.fullmatch(given):
        return {"http.request.id": given}
    return {"http.request.id": uuid7()}


def api_key(headers: Mapping[str, str]) -> str | None:
    """The API key presented in `X-API-Key` or `Authorization: Bearer|ApiKey`, if any."""
    key = headers.get("x-api-key", "").strip()
    if key:
        return key
    auth = headers.get("authorization", "")
    scheme = auth[:7].lower()
    for prefix in _KEY_SCHEMES:
        if scheme.startswith(prefix):
            return auth[len(prefix):].strip() or None
    return None


def key_fields(fingerprint: Fingerprint, key: str) -> dict[str, str]:
    """`apiwatch.api_key.id` (and `.prefix` when the key is long enough) standing for `key`."""
    key_id, prefix = fingerprint(key)
    fields = {"apiwatch.api_key.id": key_id}
    if prefix:
        fields["apiwatch.api_key.prefix"] = prefix
    return fields


def validation_fields(body: bytes) -> list[str]:
    """Dotted names of the failing fields in a FastAPI/pydantic error body (`detail[].loc`).

    `{"detail": [{"loc": ["body", "email"], "input": "..."}]}` gives `["body.email"]`; the
    `input` and `msg` members, which may quote the value, are never read.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    detail = document.get("detail") if isinstance(document, dict) else None
    if not isinstance(detail, list):
        return []
    names: list[str] = []
    for item in detail[:MAX_FIELDS]:
        loc = item.get("loc") if isinstance(item, dict) else None
        if isinstance(loc, list) and all(isinstance(p, str | int) for p in loc):
            name = ".".join(str(p) for p in loc)
            if name and name not in names:
                names.append(name)
    return names


#: Request headers as an adapter hands them over: ASGI's `(name, value)` byte pairs as they came,
#: or a mapping of lower-case names (WSGI, Django). Both hold only strings and bytes, so a queued
#: record holding them is freed by reference counting and never reaches an old GC generation.
RawHeaders = tuple[tuple[bytes, bytes], ...] | Mapping[str, str]


def header_map(raw: RawHeaders) -> Mapping[str, str]:
    """Lower-case header names to values; repeated headers joined as RFC 9110 section 5.3 allows
    (so X-Forwarded-For hops stay in order)."""
    if not isinstance(raw, tuple):
        return raw
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    return headers


def wsgi_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """Lower-case request header names and values from a WSGI environ (PEP 3333)."""
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_") and isinstance(value, str)
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers


#: What `HttpRequest.native` holds once the exchange is over (see `HttpRequest.release`).
_RELEASED: Any = object()
#: A route template not looked up yet (None means the framework matched no route).
_UNREAD: Any = object()


class HttpRequest:
    """The request being served, as capture sees it; its event fields are computed once.

    The adapters create one per request and make it current (`CURRENT_REQUEST`), so that an
    explicit event raised by the app while serving it (a failed login) carries the same client
    IP, request id and route as the middleware's own event. Header parsing is deferred until an
    event is actually built: most requests log nothing, and a logged exchange is built on the
    emitter's thread from a record (`exchange_record`), not on the request path.
    """

    __slots__ = (
        "_fields", "_headers", "_raw", "_raw_headers", "_route", "_route_value", "method",
        "native", "path", "peer", "reason",
    )

    def __init__(
        self,
        method: str,
        path: str,
        peer: str | None,
        native: Any,
        *,
        headers: Callable[[Any], RawHeaders],
        route: Callable[[Any], str | None],
    ) -> None:
        # `headers` and `route` read `native` only when an exchange is recorded or an explicit
        # event built; plain functions, not per-request closures, keep the common path cheap.
        # (The ASGI adapter's `_AsgiRequest.__init__` sets these same fields itself.)
        self.method = method
        self.path = path
        self.peer = peer
        self.native = native
        self.reason: str | None = None
        self._raw_headers = headers
        self._route = route
        self._raw: RawHeaders | None = None
        self._headers: Mapping[str, str] | None = None
        self._route_value: str | None = _UNREAD
        self._fields: dict[str, Any] | None = None

    def raw_headers(self) -> RawHeaders:
        """The headers as the adapter handed them over (see `RawHeaders`)."""
        if self._raw is None:
            self._raw = () if self.native is _RELEASED else self._raw_headers(self.native)
        return self._raw

    @property
    def headers(self) -> Mapping[str, str]:
        """Request headers, lower-case names."""
        if self._headers is None:
            self._headers = header_map(self.raw_headers())
        return self._headers

    def route(self) -> str | None:
        """The framework's route template, when it matched one."""
        if self._route_value is _UNREAD:
            self._route_value = None if self.native is _RELEASED else self._route(self.native)
        return self._route_value

    def release(self) -> None:
        """Drop the framework's request object once the exchange is over.

        The request stays reachable from the task's context (`CURRENT_REQUEST`) and from the
        callbacks asyncio scheduled meanwhile; holding the ASGI scope from there kept a cycle
        that only the garbage collector frees. Under load that cost 10% of throughput and
        full collections of tens of milliseconds (bench/middleware_bench.py).
        """
        self.native = _RELEASED

    def fields(self, resolver: ClientIPResolver, fingerprint: Fingerprint) -> dict[str, Any]:
        """The request's event fields: method, path, route, client IP, ids, agent, key id."""
        if self._fields is None:
            headers = self.headers
            fields: dict[str, Any] = {
                "http.request.method": self.method,
                "url.path": self.path,
                "apiwatch.route": self.route() or normalize_route(self.path),
                **request_ids(headers),
            }
            ip = resolver.resolve(self.peer, headers)
            if ip is not None:
                fields["source.ip"] = ip
            agent = headers.get("user-agent")
            if agent:
                fields["user_agent.original"] = agent
            key = api_key(headers)
            if key is not None:
                fields.update(key_fields(fingerprint, key))
            self._fields = fields
        return dict(self._fields)


#: The request being served in this context (thread or task), for explicit events.
CURRENT_REQUEST: ContextVar[HttpRequest | None] = ContextVar("apiwatch_request", default=None)


@dataclass(slots=True)
class Exchange:
    """What an adapter measured of one finished exchange."""

    request: HttpRequest
    status: int
    start_ns: int
    duration_ns: int
    bytes_in: int | None = None
    bytes_out: int | None = None
    validation_fields: Sequence[str] = field(default_factory=list)
    user_id: str | None = None


def build_event(
    exchange: Exchange,
    action: str,
    resolver: ClientIPResolver,
    fingerprint: Fingerprint,
) -> Event:
    """The event of one exchange under `action` (see `action_for`)."""
    request = exchange.request
    fields = request.fields(resolver, fingerprint)
    status = exchange.status
    fields["http.response.status_code"] = status
    fields["event.duration"] = exchange.duration_ns
    if exchange.bytes_in is not None:
        fields["http.request.body.bytes"] = exchange.bytes_in
    if exchange.bytes_out is not None:
        fields["http.response.body.bytes"] = exchange.bytes_out
    if exchange.user_id is not None:
        fields["user.id"] = exchange.user_id
    if exchange.validation_fields:
        fields["apiwatch.validation.fields"] = list(exchange.validation_fields)
    reason = request.reason
    if reason is None and status == 401:
        presented = "authorization" in request.headers or "x-api-key" in request.headers
        reason = "credentials rejected" if presented else "no credentials presented"
    return make_event(
        action,
        fields,
        message=f"{request.method} {fields['apiwatch.route']} {status}",
        outcome=http_outcome(status) if action == "http_request" else None,
        reason=reason,
        timestamp_ns=exchange.start_ns,
    )


#: A logged exchange as the request path queues it (`exchange_record`): a flat tuple of strings,
#: numbers and the raw headers. Building, sanitizing and encoding the event happen later on the
#: emitter's thread; and unlike an event dict (whose lists keep it tracked), such a tuple is
#: untracked by the first young collection, so a full queue never makes old generations grow.
Record = tuple[Any, ...]


def exchange_record(
    exchange: Exchange, action: str, user: str | None, tenant: str | None
) -> Record:
    """What `event_from_record` needs of a finished exchange; `user` and `tenant` come from the
    application's hooks (they read the framework's request, so they run before it is released)."""
    request = exchange.request
    return (
        action, request.method, request.path, request.peer, request.raw_headers(),
        request.route(), request.reason, request._fields, exchange.status, exchange.start_ns,
        exchange.duration_ns, exchange.bytes_in, exchange.bytes_out,
        tuple(exchange.validation_fields), exchange.user_id, user, tenant,
    )


def event_from_record(
    record: Record, resolver: ClientIPResolver, fingerprint: Fingerprint
) -> Event:
    """The event of an exchange recorded by `exchange_record`."""
    (action, method, path, peer, raw, route, reason, fields, status, start_ns, duration_ns,
     bytes_in, bytes_out, validation, user_id, user, tenant) = record
    request = HttpRequest(method, path, peer, _RELEASED, headers=_no_headers, route=_no_route)
    request._raw = raw
    request._route_value = route
    request.reason = reason
    request._fields = fields  # computed already if the app raised an explicit event
    exchange = Exchange(request, status, start_ns, duration_ns, bytes_in, bytes_out, validation,
                        user_id)
    event = build_event(exchange, action, resolver, fingerprint)
    for name, value in (("user.id", user), ("apiwatch.tenant", tenant)):
        if value and name not in event:
            event[name] = value
    return event


def _no_headers(native: Any) -> RawHeaders:
    return ()


def _no_route(native: Any) -> None:
    return None
