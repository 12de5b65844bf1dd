"""RFC 5424 syslog messages, with RFC 6587 octet-counting framing.

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [apiwatch@32473 name="value" ...] BOM{ECS JSON}

- PRI = facility * 8 + severity (RFC 5424 6.2.1). The severity is the event's `event.severity`
  (a syslog severity, 0-7, as `make_event` sets it) or else derived from `log.level`. The default
  facility is 10, security/authorization (authpriv): these records name users and addresses,
  and that facility is the one syslog daemons keep in a restricted file.
- Header fields are printable US-ASCII without spaces (6.2), cut to their maximum lengths;
  anything else becomes `_`, and an empty field is the NILVALUE `-`. MSGID is `event.action`.
- STRUCTURED-DATA has one element whose SD-ID is `apiwatch@32473`: 32473 is the private
  enterprise number IANA reserves for documentation (RFC 5612), used until apiwatch has its own.
  Its SD-PARAMs are the hot fields (`_SD_FIELDS`), values escaped per 6.3.3 (`"`, `\\`, `]`).
- MSG is the UTF-8 BOM and the event's ECS JSON (6.4), which contains no line break.

A message never contains LF, so newline framing (RFC 6587 3.4.2) is possible, but octet
counting (3.4.1, and RFC 5425 over TLS) is what `frame_octet_counted` provides and what
receivers cannot be confused by.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from apiwatch.errors import ConfigError
from apiwatch.events.clock import format_timestamp, parse_timestamp
from apiwatch.formats._text import as_text, escape_unsafe, first, utf8
from apiwatch.formats.ecs import encode_ecs

#: The SD-ID: IANA's example enterprise number (RFC 5612), documented as such.
SD_ID = "apiwatch@32473"
#: Fields copied into the structured data, so a syslog receiver can filter without JSON.
_SD_FIELDS = (
    "event.id",
    "event.outcome",
    "source.ip",
    "user.name",
    "http.request.method",
    "url.path",
    "http.response.status_code",
    "apiwatch.tenant",
    "apiwatch.seq",
    "trace.id",
)
#: Default facility: 10, security/authorization messages (authpriv).
AUTHPRIV = 10
_LEVEL_SEVERITY = {
    "emergency": 0,
    "alert": 1,
    "critical": 2,
    "error": 3,
    "warn": 4,
    "warning": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}
_NOTICE = 5
_BOM = b"\xef\xbb\xbf"
_NOT_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})", re.ASCII
)


def encode_syslog(
    event: Mapping[str, Any],
    *,
    hostname: str | None = None,
    app_name: str = "apiwatch",
    procid: str | None = None,
    facility: int = AUTHPRIV,
) -> bytes:
    """One RFC 5424 message (no trailing newline; frame it with `frame_octet_counted`).

    `hostname` defaults to the event's `host.hostname` / `host.name`, `procid` to its
    `process.pid`; both are NILVALUE when absent.
    """
    if not 0 <= facility <= 23:
        raise ConfigError(f"syslog facility must be 0..23, got {facility}")
    header = " ".join(
        (
            f"<{facility * 8 + _severity(event)}>1",
            _timestamp(event.get("@timestamp")),
            _header_field(hostname or first(event, "host.hostname", "host.name"), 255),
            _header_field(app_name, 48),
            _header_field(procid or first(event, "process.pid"), 128),
            _header_field(event.get("event.action"), 32),
            _structured_data(event),
        )
    )
    return b"%b %b%b" % (utf8(header), _BOM, encode_ecs(event)[:-1])


def frame_octet_counted(message: bytes) -> bytes:
    """RFC 6587 3.4.1 octet-counting frame: MSG-LEN SP SYSLOG-MSG (the length in bytes)."""
    return b"%d %b" % (len(message), message)


def _severity(event: Mapping[str, Any]) -> int:
    value = event.get("event.severity")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 7:
        return value
    level = event.get("log.level")
    return _LEVEL_SEVERITY.get(level.lower(), _NOTICE) if isinstance(level, str) else _NOTICE


def _timestamp(value: Any) -> str:
    """RFC 5424 6.2.3 TIMESTAMP: RFC 3339 with `T`, `Z`, at most 6 fraction digits."""
    if not isinstance(value, str):
        return "-"
    if _TIMESTAMP.fullmatch(value):
        return value
    try:
        moment = parse_timestamp(value)
    except ValueError:
        return "-"
    return format_timestamp(int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000)


def _header_field(value: Any, limit: int) -> str:
    if value is None:
        return "-"
    text = _NOT_PRINTUSASCII.sub("_", as_text(value))[:limit]
    return text or "-"


def _structured_data(event: Mapping[str, Any]) -> str:
    params = [
        f'{name}="{_param_value(value)}"'
        for name in _SD_FIELDS
        if (value := event.get(name)) is not None
    ]
    if not params:
        return "-"
    return f"[{SD_ID} {' '.join(params)}]"


def _param_value(value: Any) -> str:
    """RFC 5424 6.3.3: escape `\\`, `"` and `]`; unsafe characters become `\\uXXXX`."""
    text = as_text(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return escape_unsafe(text)
