"""nginx and Apache access logs (Common and Combined Log Format) as apiwatch events.

Reads `host ident user [time] "request" status bytes` (Common), the Combined form with
`"referer" "user-agent"`, an optional leading virtual host (`%v` / `$host`), and ignores extra
trailing fields (request time, upstream). Each line becomes the event the HTTP middleware
records: 401 is `authn_token_invalid` (the API refused the credentials presented), 403 is
`authz_fail`, any other status is `http_request` with `event.outcome` failure from 400 on.

A request line that is not `METHOD target HTTP/x.y` (binary junk, a TLS handshake sent to a
plain-text port, which nginx logs as a 400 with `\\xHH` escapes) still gives its event with the
fields that are there; `event.original` keeps the line.
"""

from __future__ import annotations

import calendar
import re
from functools import lru_cache
from typing import Any

from apiwatch.events import Event, make_event
from apiwatch.events.routes import normalize_route
from apiwatch.events.vocabulary import http_outcome
from apiwatch.formats.parsed import LineParseError, source_fields
from apiwatch.formats.syslog_parse import YearlessClock, parse_syslog

_QUOTED = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
_LINE = re.compile(
    r"(?:(\S+) )?(\S+) \S+ (\S+) \[([^\]]+)\] " + _QUOTED + r" (\d{3}) (\d+|-)"
    r"(?: " + _QUOTED + " " + _QUOTED + r")?(.*)",
    re.S,
)
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")  # RFC 9110 token, narrowed to plausible methods
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_ACTIONS = {401: "authn_token_invalid", 403: "authz_fail"}
# Access logs repeat their paths: template each distinct one once.
_route = lru_cache(maxsize=4096)(normalize_route)
# Only the message of a syslog-carried line is used; its header's date is not.
_CLOCK = YearlessClock(2000)


def _clf_time_ns(text: str) -> int:
    """`10/Oct/2000:13:55:36 -0700` (strftime `%d/%b/%Y:%H:%M:%S %z`) as epoch nanoseconds."""
    if len(text) != 26 or text[2] != "/" or text[6] != "/" or text[21] not in "+-":
        raise ValueError(text)
    seconds = calendar.timegm((
        int(text[7:11]), _MONTHS[text[3:6]], int(text[0:2]),
        int(text[12:14]), int(text[15:17]), int(text[18:20]),
    ))
    offset = int(text[22:24]) * 3600 + int(text[24:26]) * 60
    seconds += -offset if text[21] == "+" else offset
    return seconds * 1_000_000_000


def _request_fields(fields: dict[str, Any], request: str) -> str | None:
    """Set method, URL and version from a request line; return a reason if it is malformed."""
    parts = request.split(" ")
    if len(parts) == 3 and parts[2].startswith("HTTP/"):
        fields["http.version"] = parts[2][5:]
    elif len(parts) != 2:  # two parts: an HTTP/0.9 request line, which has no version
        return "malformed request line"
    method, target = parts[0], parts[1]
    if _TOKEN.fullmatch(method) is None or not target:
        return "malformed request line"
    fields["http.request.method"] = method.upper()
    fields["url.original"] = target
    if "://" in target[:10]:  # absolute-form, as a proxy sees it: keep the path part
        slash = target.find("/", target.index("://") + 3)
        target = target[slash:] if slash != -1 else "/"
    path, _, query = target.partition("?")
    fields["url.path"] = path
    if query:
        fields["url.query"] = query
    fields["apiwatch.route"] = _route(path)
    return None


def _syslog_body(line: str) -> str:
    try:
        return parse_syslog(line, _CLOCK).msg
    except LineParseError:
        return ""


class AccessLogParser:
    """Parses Common / Combined Log Format lines; `dataset` is `nginx.access` or `apache.access`."""

    def __init__(self, dataset: str = "nginx.access") -> None:
        self.dataset = dataset
        self._times: dict[str, int] = {}

    def _time_ns(self, text: str) -> int:
        # Busy logs write many lines per second: parse each distinct timestamp once.
        ns = self._times.get(text)
        if ns is None:
            try:
                ns = _clf_time_ns(text)
            except (ValueError, KeyError):
                raise LineParseError(f"invalid access log time [{text[:40]}]") from None
            if len(self._times) > 4096:
                self._times.clear()
            self._times[text] = ns
        return ns

    def __call__(self, line: str) -> list[Event]:
        """The event of one line; raises LineParseError if it is not an access log line."""
        line = line.rstrip("\r\n")
        m = _LINE.match(line)
        if m is None and line[:1].isalpha():
            # `access_log syslog:server=...`: nginx sends the same line behind an RFC 3164
            # header; a file written by the syslog daemon keeps it.
            m = _LINE.match(_syslog_body(line))
        if m is None:
            raise LineParseError("not a Common/Combined Log Format line")
        vhost, client, user, stamp, request, status_text, size, referrer, agent, _extra = (
            m.groups()
        )
        ns = self._time_ns(stamp)
        status = int(status_text)
        fields: dict[str, Any] = {
            "event.dataset": self.dataset,
            "event.original": line,
            "http.response.status_code": status,
        }
        source_fields(fields, client)
        if vhost:
            fields["url.domain"] = vhost
        if user != "-":
            fields["user.name"] = user
        if size != "-":
            fields["http.response.body.bytes"] = int(size)
        if referrer and referrer != "-":
            fields["http.request.referrer"] = referrer
        if agent and agent != "-":
            fields["user_agent.original"] = agent
        reason = _request_fields(fields, request)
        action = _ACTIONS.get(status, "http_request")
        return [
            make_event(action, fields, outcome=http_outcome(status), reason=reason,
                       timestamp_ns=ns)
        ]
