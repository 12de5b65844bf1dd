"""The fields an apiwatch Event may carry, with their types.

Events are flat mappings keyed by ECS dotted names (`source.ip`, `event.action`); apiwatch's own
fields live under `apiwatch.*`. The decoder refuses anything not listed here (besides `labels.*`
strings), so a source cannot smuggle arbitrary structure into the ledger.
"""

from __future__ import annotations

from enum import Enum


class FieldType(Enum):
    """The JSON shape a field's value must have."""

    KEYWORD = "keyword"  # a string
    TEXT = "text"  # a free-text string: scanned for secrets by format
    DATE = "date"  # an RFC 3339 string with an offset
    LONG = "long"  # an integer
    FLOAT = "float"  # a number
    BOOLEAN = "boolean"
    KEYWORDS = "keywords"  # a list of strings
    IP = "ip"  # an IPv4 or IPv6 address string


K, T, D, L, F, B, KS, IP = (
    FieldType.KEYWORD,
    FieldType.TEXT,
    FieldType.DATE,
    FieldType.LONG,
    FieldType.FLOAT,
    FieldType.BOOLEAN,
    FieldType.KEYWORDS,
    FieldType.IP,
)

ECS_VERSION = "9.4.0"

#: ECS fields apiwatch writes or accepts (ECS 9.4.0 names and types).
ECS_FIELDS: dict[str, FieldType] = {
    "@timestamp": D,
    "log.level": K,
    "log.logger": K,
    "message": T,
    "ecs.version": K,
    "tags": KS,
    "event.kind": K,
    "event.action": K,
    "event.category": KS,
    "event.type": KS,
    "event.outcome": K,
    "event.reason": T,
    "event.id": K,
    "event.code": K,
    "event.sequence": L,
    "event.severity": L,
    "event.duration": L,
    "event.created": D,
    "event.ingested": D,
    "event.original": T,
    "event.dataset": K,
    "event.module": K,
    "event.provider": K,
    "event.risk_score": F,
    "source.ip": IP,
    "source.port": L,
    "source.address": K,
    "source.domain": K,
    "source.as.number": L,
    "source.as.organization.name": K,
    "source.geo.country_iso_code": K,
    "destination.ip": IP,
    "destination.port": L,
    "destination.address": K,
    "client.ip": IP,
    "user.name": K,
    "user.id": K,
    "user.domain": K,
    "user.email": K,
    "user.roles": KS,
    "user.target.name": K,
    "user.target.id": K,
    "user.changes.roles": KS,
    "url.path": K,
    "url.query": K,
    "url.original": K,
    "url.domain": K,
    "url.scheme": K,
    "url.port": L,
    "http.request.method": K,
    "http.request.id": K,
    "http.request.referrer": K,
    "http.request.body.bytes": L,
    "http.request.mime_type": K,
    "http.response.status_code": L,
    "http.response.body.bytes": L,
    "http.response.mime_type": K,
    "http.version": K,
    "user_agent.original": T,
    "service.name": K,
    "service.version": K,
    "service.environment": K,
    "service.node.name": K,
    "host.name": K,
    "host.hostname": K,
    "host.ip": KS,
    "process.name": K,
    "process.pid": L,
    "trace.id": K,
    "transaction.id": K,
    "span.id": K,
    "error.message": T,
    "error.type": K,
    "error.code": K,
    "file.path": K,
    "file.name": K,
    "file.mime_type": K,
    "file.size": L,
    "rule.name": K,
    "rule.id": K,
}

#: apiwatch's own fields (a custom namespace, as ECS recommends for non-ECS data).
APIWATCH_FIELDS: dict[str, FieldType] = {
    "apiwatch.seq": L,
    "apiwatch.source": K,
    "apiwatch.received": D,
    "apiwatch.route": K,
    "apiwatch.tenant": K,
    "apiwatch.api_key.id": K,
    "apiwatch.api_key.prefix": K,
    "apiwatch.object.type": K,
    "apiwatch.object.ids": KS,
    "apiwatch.object.count": L,
    "apiwatch.resource": K,
    "apiwatch.permission": K,
    "apiwatch.validation.fields": KS,
    "apiwatch.params": KS,
    "apiwatch.truncated": KS,
    "apiwatch.redacted": KS,
    "apiwatch.gap.first": L,
    "apiwatch.gap.last": L,
    "apiwatch.last_seen": D,
    "apiwatch.dropped": L,
}

FIELDS: dict[str, FieldType] = {**ECS_FIELDS, **APIWATCH_FIELDS}

#: Prefix of free-form string fields a user may add (`labels.team`); values must be strings.
LABELS_PREFIX = "labels."


def field_type(name: str) -> FieldType | None:
    """The type of a known field, `KEYWORD` for a label, None for an unknown field."""
    known = FIELDS.get(name)
    if known is not None:
        return known
    if name.startswith(LABELS_PREFIX) and len(name) > len(LABELS_PREFIX):
        return FieldType.KEYWORD
    return None
