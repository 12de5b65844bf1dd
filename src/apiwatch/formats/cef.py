"""ArcSight Common Event Format (CEF) lines.

    CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|key=value key=value ...

Per the ArcSight CEF Implementation Standard: header fields escape `\\` and `|`; extension
values escape `\\`, `=`, and write CR / LF as `\\r` / `\\n`. Other characters that could end a
line or drive a terminal (C0, DEL, C1, U+2028/2029) are written as `\\uXXXX`, which no CEF
escape produces otherwise, so one event is always one line. Values are cut to the standard's
maximum lengths.

SignatureID is `event.action`, Name the vocabulary's description of it, Severity 0-10 from
the syslog severity (INFO 3, WARN 6, CRITICAL 9). Extension keys are the dictionary's
(`rt`, `src`, `suser`, `request`, `requestMethod`, `act`, `outcome`...); apiwatch fields
without a CEF key travel in `cs1`..`cs6` / `cn1`..`cn2` with their ECS name as label.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from apiwatch import __version__
from apiwatch.errors import UnknownActionError
from apiwatch.events.clock import parse_timestamp
from apiwatch.events.vocabulary import lookup
from apiwatch.formats._text import as_text, escape_unsafe, utf8

#: ECS field -> (CEF key, maximum length or None).
_KEYS: dict[str, tuple[str, int | None]] = {
    "source.port": ("spt", None),
    "destination.port": ("dpt", None),
    "user.name": ("suser", 1023),
    "user.id": ("suid", 1023),
    "user.target.name": ("duser", 1023),
    "user.target.id": ("duid", 1023),
    "http.request.method": ("requestMethod", 1023),
    "user_agent.original": ("requestClientApplication", 1023),
    "http.request.referrer": ("requestContext", 2048),
    "http.request.body.bytes": ("in", None),
    "http.response.body.bytes": ("out", None),
    "event.outcome": ("outcome", 63),
    "event.reason": ("reason", 1023),
    "event.id": ("externalId", 40),
    "event.category": ("cat", 1023),
    "host.name": ("dvchost", 100),
    "url.domain": ("dhost", 1023),
    "process.pid": ("dvcpid", None),
    "process.name": ("dproc", 1023),
    "message": ("msg", 1023),
}
#: ECS / apiwatch fields with no CEF key: (value key, label key, ECS name as the label).
_CUSTOM: tuple[tuple[str, str, str], ...] = (
    ("cs1", "cs1Label", "apiwatch.route"),
    ("cs2", "cs2Label", "apiwatch.tenant"),
    ("cs3", "cs3Label", "apiwatch.api_key.id"),
    ("cs4", "cs4Label", "trace.id"),
    ("cs5", "cs5Label", "service.name"),
    ("cs6", "cs6Label", "apiwatch.source"),
    ("cn1", "cn1Label", "http.response.status_code"),
    ("cn2", "cn2Label", "apiwatch.seq"),
)
_CUSTOM_STRING_MAX = 4000
_SYSLOG_TO_CEF = {0: 10, 1: 10, 2: 9, 3: 7, 4: 6, 5: 4, 6: 3, 7: 1}
_UNKNOWN_SEVERITY = 5


def encode_cef(
    event: Mapping[str, Any],
    *,
    vendor: str = "apiwatch",
    product: str = "apiwatch",
    version: str = __version__,
) -> bytes:
    """One CEF line (ending in b"\\n") for `event`."""
    action = as_text(event.get("event.action", ""))
    header = "|".join(
        (
            "CEF:0",
            _header(vendor, 63),
            _header(product, 63),
            _header(version, 31),
            _header(action, 1023),
            _header(_name(action), 512),
            str(_severity(event)),
        )
    )
    return utf8(f"{header}|{' '.join(_extension(event))}\n")


def _name(action: str) -> str:
    try:
        return lookup(action).description
    except UnknownActionError:
        return action


def _severity(event: Mapping[str, Any]) -> int:
    value = event.get("event.severity")
    if isinstance(value, int) and not isinstance(value, bool):
        return _SYSLOG_TO_CEF.get(value, _UNKNOWN_SEVERITY)
    return _UNKNOWN_SEVERITY


def _extension(event: Mapping[str, Any]) -> list[str]:
    pairs: list[str] = []
    rt = _epoch_ms(event.get("@timestamp"))
    if rt is not None:
        pairs.append(f"rt={rt}")
    source = event.get("source.ip")
    if source is not None:
        # `src` is an IPv4 field in the dictionary; an IPv6 source goes to c6a1.
        key = "src" if _is_ipv4(source) else "c6a1"
        pairs.append(f"{key}={_value(source, 1023)}")
        if key == "c6a1":
            pairs.append("c6a1Label=source.ip")
    request = event.get("url.original") or _path_and_query(event)
    if request:
        pairs.append(f"request={_value(request, 1023)}")
    action = event.get("event.action")
    if action is not None:
        pairs.append(f"act={_value(action, 63)}")
    for field, (key, limit) in _KEYS.items():
        value = event.get(field)
        if value is not None:
            pairs.append(f"{key}={_value(value, limit)}")
    for key, label_key, field in _CUSTOM:
        value = event.get(field)
        if value is not None:
            limit = None if key.startswith("cn") else _CUSTOM_STRING_MAX
            pairs.append(f"{key}={_value(value, limit)} {label_key}={field}")
    return pairs


def _value(value: Any, limit: int | None) -> str:
    text = as_text(value)
    if limit is not None:
        text = text[:limit]
    text = text.replace("\\", "\\\\").replace("=", "\\=")
    return escape_unsafe(text.replace("\r", "\\r").replace("\n", "\\n"))


def _header(value: str, limit: int) -> str:
    text = value[:limit].replace("\\", "\\\\").replace("|", "\\|")
    return escape_unsafe(text)


def _epoch_ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        moment = parse_timestamp(value)
    except ValueError:
        return None
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def _is_ipv4(value: Any) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address)
    except ValueError:
        return False


def _path_and_query(event: Mapping[str, Any]) -> str | None:
    path = event.get("url.path")
    query = event.get("url.query")
    if path is None:
        return None
    return f"{as_text(path)}?{as_text(query)}" if query else as_text(path)
