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
    parent = headers.get("traceparent")
    if parent:
        m = _TRACEPARENT.fullmatch(parent.strip().lower())
        if m and m.group(1) != "0" * 32:
            return {"trace.id": m.group(1)}
    given = headers.get("x-request-id")
    if given and _REQUEST_ID.fullmatch(given := given.strip()):
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
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}
    if len(headers) == len(raw):
        return headers
    joined: dict[str, str] = {}  # a name came more than once
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        joined[key] = f"{joined[key]},{text}" if key in joined else text
    return joined


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
            self._fields = request_fields(self.method, self.path, self.peer, self.headers,
                                          self.route(), resolver=resolver,
                                          fingerprint=fingerprint)
        return dict(self._fields)


def request_fields(
    method: str,
    path: str,
    peer: str | None,
    headers: Mapping[str, str],
    route: str | None,
    *,
    resolver: ClientIPResolver,
    fingerprint: Fingerprint,
) -> dict[str, Any]:
    """A request's event fields: method, path, route, ids, client IP, agent, API key id."""
    fields: dict[str, Any] = {
        "http.request.method": method,
        "url.path": path,
        "apiwatch.route": route or normalize_route(path),
        **request_ids(headers),
    }
    ip = resolver.resolve(peer, headers)
    if ip is not None:
        fields["source.ip"] = ip
    agent = headers.get("user-agent")
    if agent:
        fields["user_agent.original"] = agent
    key = api_key(headers)
    if key is not None:
        fields.update(key_fields(fingerprint, key))
    return fields


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
    return event_from_record(exchange_record(exchange, action, None, None), resolver, fingerprint)


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
    """The event of an exchange recorded by `exchange_record`.

    This runs once per logged request (every request in the access-log mode), so it builds the
    event in one pass with as few calls as it can.
    """
    (action, method, path, peer, raw, route, reason, fields, status, start_ns, duration_ns,
     bytes_in, bytes_out, validation, user_id, user, tenant) = record
    headers = header_map(raw)
    if fields is None:  # else computed already, because the app raised an explicit event
        fields = request_fields(method, path, peer, headers, route, resolver=resolver,
                                fingerprint=fingerprint)
    if reason is None and status == 401:
        presented = "authorization" in headers or "x-api-key" in headers
        reason = "credentials rejected" if presented else "no credentials presented"
    event = make_event(
        action,
        fields,
        message=f"{method} {fields['apiwatch.route']} {status}",
        outcome=http_outcome(status) if action == "http_request" else None,
        reason=reason,
        timestamp_ns=start_ns,
    )
    event["http.response.status_code"] = status
    event["event.duration"] = duration_ns
    if bytes_in is not None:
        event["http.request.body.bytes"] = bytes_in
    if bytes_out is not None:
        event["http.response.body.bytes"] = bytes_out
    if validation:
        event["apiwatch.validation.fields"] = list(validation)
    user_id = user_id or user
    if user_id and "user.id" not in event:
        event["user.id"] = user_id
    if tenant and "apiwatch.tenant" not in event:
        event["apiwatch.tenant"] = tenant
    return event
