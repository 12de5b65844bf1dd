"""OCSF 1.8.0 events, one JSON object per line.

The class and activity of each action come from the vocabulary (`Action.ocsf_class`,
`Action.ocsf_activity`; see `apiwatch.events.vocabulary` for why each action has its class):
Authentication 3002 for logons and sessions, Account Change 3001 and User Access 3005 for
account and privilege lifecycle, API Activity 6003 for business operations, HTTP Activity 4002
for the access log, Web Resources 6001 / 6004 for uploads and denied resources, Application
Lifecycle 6002 for `sys_*`, Detection Finding 2004 for `malicious_*` and other detections.
An activity of 0 on 4002 / 6003 is derived from `http.request.method` (HTTP verb, or CRUD:
GET/HEAD read, POST create, PUT/PATCH update, DELETE delete). An action outside the
vocabulary becomes an OCSF Base Event (class 0).

Every event gets `class_uid`, `category_uid`, `activity_id`, `type_uid` (class_uid * 100 +
activity_id), `severity_id` (from the syslog severity: INFO 1, WARN 3, CRITICAL 5), `time`
(epoch milliseconds), `status_id` (from `event.outcome`; a finding is New) and `metadata`
(OCSF version, product, `event.id` as uid). ECS fields fill `src_endpoint`, `dst_endpoint`,
`actor.user`, `user`, `http_request`, `http_response` and `service` where the class has them
(inside `evidences` for a finding). An attribute the class requires but the event lacks is
set to "unknown" rather than left out. Everything else goes to `unmapped` under its ECS name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apiwatch import __version__
from apiwatch.errors import UnknownActionError
from apiwatch.events.clock import parse_timestamp
from apiwatch.events.vocabulary import Action, lookup
from apiwatch.formats._text import json_line

OCSF_VERSION = "1.8.0"
UNKNOWN = "unknown"
_PRODUCT = {"name": "apiwatch", "vendor_name": "apiwatch", "version": __version__}

_ENDPOINTS = frozenset({"src_endpoint", "dst_endpoint"})
_HTTP = frozenset({"http_request", "http_response"})


@dataclass(frozen=True, slots=True)
class _Class:
    """What an OCSF class holds: its category and which context objects it has."""

    category: int
    objects: frozenset[str]


_CLASSES: dict[int, _Class] = {
    0: _Class(0, frozenset()),  # Base Event
    2004: _Class(2, frozenset({"actor", "evidences"})),  # Detection Finding
    3001: _Class(3, frozenset({"src_endpoint", "actor", "user", *_HTTP})),  # Account Change
    3002: _Class(3, frozenset({*_ENDPOINTS, "actor", "user", "service", *_HTTP})),
    3005: _Class(3, frozenset({"src_endpoint", "actor", "user", *_HTTP})),  # User Access
    4002: _Class(4, frozenset({*_ENDPOINTS, "actor", *_HTTP})),  # HTTP Activity
    6001: _Class(6, frozenset({*_ENDPOINTS, "actor", *_HTTP})),  # Web Resources Activity
    6002: _Class(6, frozenset({"actor"})),  # Application Lifecycle
    6003: _Class(6, frozenset({*_ENDPOINTS, "actor", *_HTTP})),  # API Activity
    6004: _Class(6, frozenset({"src_endpoint", "actor", *_HTTP})),  # Web Resource Access
}
_FINDING = 2004
#: Account Change and User Access: `user` is the account acted upon (`user.target.*`).
_TARGETED = frozenset({3001, 3005})
_FINDING_NEW = 1

#: ECS field -> (OCSF object, attribute...) for the context objects.
_PATHS: dict[str, tuple[str, ...]] = {
    "source.ip": ("src_endpoint", "ip"),
    "source.port": ("src_endpoint", "port"),
    "source.domain": ("src_endpoint", "domain"),
    "destination.ip": ("dst_endpoint", "ip"),
    "destination.port": ("dst_endpoint", "port"),
    "host.name": ("dst_endpoint", "hostname"),
    "user.name": ("user", "name"),
    "user.id": ("user", "uid"),
    "user.email": ("user", "email_addr"),
    "user.domain": ("user", "domain"),
    "apiwatch.api_key.id": ("user", "credential_uid"),
    "user.target.name": ("target", "name"),
    "user.target.id": ("target", "uid"),
    "http.request.id": ("http_request", "uid"),
    "http.request.referrer": ("http_request", "referrer"),
    "http.request.body.bytes": ("http_request", "body_length"),
    "http.version": ("http_request", "version"),
    "user_agent.original": ("http_request", "user_agent"),
    "url.path": ("http_request", "url", "path"),
    "url.query": ("http_request", "url", "query_string"),
    "url.original": ("http_request", "url", "url_string"),
    "url.domain": ("http_request", "url", "hostname"),
    "url.scheme": ("http_request", "url", "scheme"),
    "url.port": ("http_request", "url", "port"),
    "http.response.status_code": ("http_response", "code"),
    "http.response.body.bytes": ("http_response", "body_length"),
    "http.response.mime_type": ("http_response", "content_type"),
    "service.name": ("service", "name"),
    "service.version": ("service", "version"),
}
#: ECS field -> metadata attribute.
_METADATA = {
    "event.id": "uid",
    "event.action": "event_code",
    "trace.id": "correlation_uid",
    "apiwatch.tenant": "tenant_uid",
    "apiwatch.seq": "sequence",
    "@timestamp": "original_time",
    "log.level": "log_level",
}
#: Fields mapped by code rather than by `_PATHS` / `_METADATA`.
_HANDLED = frozenset(
    {"message", "event.reason", "event.outcome", "event.severity", "http.request.method"}
)
_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT",
                      "TRACE"})
#: HTTP Activity 4002 activity ids are the HTTP verbs.
_HTTP_ACTIVITY = {"CONNECT": 1, "DELETE": 2, "GET": 3, "HEAD": 4, "OPTIONS": 5, "POST": 6,
                  "PUT": 7, "TRACE": 8, "PATCH": 9}
#: API Activity 6003 activity ids are CRUD operations.
_CRUD = {"POST": 1, "GET": 2, "HEAD": 2, "PUT": 3, "PATCH": 3, "DELETE": 4}
_BY_METHOD = {4002: _HTTP_ACTIVITY, 6003: _CRUD}
_OTHER = 99
_SEVERITY = {0: 6, 1: 5, 2: 5, 3: 4, 4: 3, 5: 2, 6: 1, 7: 1}
_STATUS = {"success": 1, "failure": 2, "unknown": 0}


def encode_ocsf(event: Mapping[str, Any]) -> bytes:
    """One OCSF JSON line (ending in b"\\n") for `event`."""
    return json_line(to_ocsf(event))


def to_ocsf(event: Mapping[str, Any]) -> dict[str, Any]:
    """The OCSF object for `event` (see the module docstring for the mapping)."""
    action = _action(event.get("event.action"))
    class_uid = action.ocsf_class if action is not None else 0
    spec = _CLASSES.get(class_uid)
    if spec is None:  # a class this encoder does not know: say what we can as a Base Event
        class_uid, spec = 0, _CLASSES[0]
    activity = _activity(class_uid, action, event.get("http.request.method"))
    out: dict[str, Any] = {
        "class_uid": class_uid,
        "category_uid": spec.category,
        "activity_id": activity,
        "type_uid": class_uid * 100 + activity,
        "severity_id": _severity(event.get("event.severity")),
        "time": _epoch_ms(event.get("@timestamp")),
        "metadata": _metadata(event),
    }
    if activity == _OTHER and action is not None:
        out["activity_name"] = action.name
    outcome = event.get("event.outcome")
    status = _STATUS.get(outcome, 0) if isinstance(outcome, str) else 0
    out["status_id"] = _FINDING_NEW if class_uid == _FINDING else status
    for field, attr in (("message", "message"), ("event.reason", "status_detail")):
        if isinstance(event.get(field), str):
            out[attr] = event[field]
    objects, unmapped = _objects(event)
    _place(out, class_uid, spec, objects, unmapped)
    _required(out, class_uid, action, objects, event)
    if unmapped:
        out["unmapped"] = unmapped
    return out


def _action(name: Any) -> Action | None:
    if not isinstance(name, str):
        return None
    try:
        return lookup(name)
    except UnknownActionError:
        return None


def _activity(class_uid: int, action: Action | None, method: Any) -> int:
    activity = action.ocsf_activity if action is not None else 0
    by_method = _BY_METHOD.get(class_uid)
    if activity == 0 and by_method is not None and isinstance(method, str):
        return by_method.get(method.upper(), 0)
    return activity


def _severity(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return _SEVERITY.get(value, 0)
    return 0


def _epoch_ms(value: Any) -> int:
    """Milliseconds since the epoch; 0 when the timestamp is missing or unreadable."""
    if isinstance(value, str):
        try:
            moment = parse_timestamp(value)
        except ValueError:
            return 0
        return int(moment.timestamp()) * 1000 + moment.microsecond // 1000
    return 0


def _metadata(event: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {"version": OCSF_VERSION, "product": dict(_PRODUCT)}
    for field, attr in _METADATA.items():
        value = event.get(field)
        if value is not None:
            meta[attr] = value
    return meta


def _objects(event: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Group mapped fields into OCSF objects; the rest is returned as `unmapped`."""
    objects: dict[str, dict[str, Any]] = {}
    unmapped: dict[str, Any] = {}
    for field, value in event.items():
        path = _PATHS.get(field)
        if path is None:
            if field not in _METADATA and field not in _HANDLED:
                unmapped[field] = value
            continue
        node = objects.setdefault(path[0], {})
        for step in path[1:-1]:
            node = node.setdefault(step, {})
        node[path[-1]] = value
    method = event.get("http.request.method")
    if isinstance(method, str) and method in _METHODS:
        objects.setdefault("http_request", {})["http_method"] = method
    elif method is not None:
        unmapped["http.request.method"] = method
    url = objects.get("http_request", {}).get("url")
    if url is not None and "path" not in url and "url_string" not in url:
        url["path"] = UNKNOWN  # OCSF url needs a path or url_string
    return objects, unmapped


def _place(
    out: dict[str, Any],
    class_uid: int,
    spec: _Class,
    objects: dict[str, dict[str, Any]],
    unmapped: dict[str, Any],
) -> None:
    """Put the context objects where the class has them, the rest in evidence or unmapped."""
    user = _named(objects.pop("user", None))
    target = _named(objects.pop("target", None))
    service = objects.pop("service", None)
    if class_uid in _TARGETED:
        # Account and privilege changes are about the target; the acting user is the actor.
        out["user"] = target or user or {"name": UNKNOWN}
        if target and user:
            out["actor"] = {"user": user}
    elif "user" in spec.objects:
        out["user"] = user or {"name": UNKNOWN}
    elif user and "actor" in spec.objects:
        out["actor"] = {"user": user}
    elif user:
        _unmap(unmapped, "user", user)
    if "service" in spec.objects:  # Authentication needs a service or a dst_endpoint
        out["service"] = service or {"name": UNKNOWN}
    elif class_uid == 6002:  # Application Lifecycle: the application is the service
        out["app"] = {"name": UNKNOWN, **(service or {})}
    elif service:
        _unmap(unmapped, "service", service)
    if target and class_uid not in _TARGETED:
        _unmap(unmapped, "target", target)
    evidence: dict[str, Any] = {}
    for name, obj in objects.items():
        if name in spec.objects:
            out[name] = obj
        elif class_uid == _FINDING:
            evidence[name] = obj
        else:
            _unmap(unmapped, name, obj)
    if evidence:
        out["evidences"] = [evidence]


def _named(user: dict[str, Any] | None) -> dict[str, Any] | None:
    """An OCSF user needs a name or a uid (an API key fingerprint alone is neither)."""
    if user is not None and "name" not in user and "uid" not in user:
        user["name"] = UNKNOWN
    return user


def _required(
    out: dict[str, Any],
    class_uid: int,
    action: Action | None,
    objects: dict[str, dict[str, Any]],
    event: Mapping[str, Any],
) -> None:
    if class_uid == _FINDING:
        name = action.name if action is not None else UNKNOWN
        out["finding_info"] = {
            "uid": str(out["metadata"].get("uid", name)),
            "title": action.description if action is not None else name,
            "types": [name],
        }
    if class_uid in (4002, 6003) and "src_endpoint" not in out:
        out["src_endpoint"] = {"name": UNKNOWN}
    if class_uid == 6003:
        out.setdefault("actor", {"app_name": UNKNOWN})
        out["api"] = {"operation": action.name if action is not None else UNKNOWN}
    if class_uid == 6004:
        out.setdefault("http_request", {})
    if class_uid in (6001, 6004):
        url = objects.get("http_request", {}).get("url", {})
        out["web_resources"] = [{"name": url.get("path") or url.get("url_string") or UNKNOWN}]
    if class_uid == 3005:
        roles = event.get("user.changes.roles")
        out["privileges"] = roles if isinstance(roles, list) and roles else [UNKNOWN]


def _unmap(unmapped: dict[str, Any], name: str, obj: dict[str, Any]) -> None:
    """Return an object the class does not have to `unmapped`, under its ECS field names."""
    for field, path in _PATHS.items():
        if path[0] != name:
            continue
        node: Any = obj
        for step in path[1:]:
            node = node.get(step) if isinstance(node, dict) else None
        if node is not None:
            unmapped[field] = node
    method = obj.get("http_method")
    if method is not None:
        unmapped["http.request.method"] = method
