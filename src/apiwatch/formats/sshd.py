"""OpenSSH server logs (auth.log, /var/log/secure) as apiwatch events.

Each security-relevant sshd message becomes one event, `event.dataset` `sshd.auth`, with
`event.code` naming the rule that matched (the same attempt often shows in several lines, and
detection rules choose which codes they count). All but `accepted` are `authn_login_fail`:

- `failed_auth`: `Failed <method> for [invalid user ]U from IP port P`
- `invalid_user`: `Invalid user U from IP`; PAM `... for illegal user U from H`
- `pam_auth_failure`: `pam_unix(sshd:auth): authentication failure; ... rhost=H [user=U]`
- `preauth_disconnect`: `Connection closed by`, `Disconnected from` (authenticating or invalid
  user) and `Received disconnect` lines ending `[preauth]`
- `max_auth_attempts`: `maximum authentication attempts exceeded for U from IP`
- `no_identification`: `Did not receive identification string from IP`
- `bad_protocol`: `Bad protocol version identification`, `banner exchange: ... invalid format`
- `negotiation_failed`: `Unable to negotiate with IP`, `ssh_dispatch_run_fatal: ... from IP`
- `preauth_timeout`: `Timeout before authentication for IP`
- `accepted` (`authn_login_success`): `Accepted <method> for U from IP port P`

Every pre-authentication failure is a login failure, as CrowdSec counts `Invalid user` lines
and pre-auth disconnects towards brute force. `message repeated N times: [ M ]` gives N events of
M. Known benign messages (sessions opened and closed, `PAM N more authentication failures`, which
sums attempts already logged one by one) give none and count as ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from apiwatch.events import Event, make_event
from apiwatch.formats.parsed import LineParseError, datetime_ns, source_fields
from apiwatch.formats.syslog_parse import SyslogMessage, YearlessClock, parse_syslog

DATASET = "sshd.auth"
#: A repeat count beyond this is refused (a parse failure), not expanded into that many events.
MAX_REPEAT = 10_000

_FAIL = "authn_login_fail"
_USER_FROM = r"(?P<user>.*) from (?P<ip>\S+)"
_PORT = r" port (?P<port>\d+)"


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str]
    code: str
    action: str
    reason: str  # may name the `method` group: "failed {method}"


def _rule(pattern: str, code: str, reason: str, action: str = _FAIL) -> _Rule:
    return _Rule(re.compile(pattern), code, action, reason)


_PAM_FAILURE = _rule(
    r"(?:pam_unix\(sshd:auth\): )?authentication failure; logname=\S* uid=\S* euid=\S* "
    r"tty=\S* ruser=\S* rhost=(?P<ip>\S*)(?:\s+user=(?P<user>\S+))?",
    "pam_auth_failure",
    "PAM authentication failure",
)
# Lazy: the address and port that sshd appends end the (attacker-chosen) user name.
_PREAUTH_USER = r"(?:(?:authenticating|invalid) user (?P<user>.*?) )?"

#: Rules by the first word of the message: one dict lookup picks the few regexes to try.
_RULES: dict[str, tuple[_Rule, ...]] = {
    "Failed": (
        _rule(rf"Failed (?P<method>\S+) for (?P<invalid>invalid user )?{_USER_FROM}{_PORT}",
              "failed_auth", "failed {method}"),
    ),
    "Invalid": (
        _rule(rf"Invalid user {_USER_FROM}(?:{_PORT})?\s*$", "invalid_user", "unknown user"),
    ),
    "Accepted": (
        _rule(rf"Accepted (?P<method>\S+) for {_USER_FROM}{_PORT}", "accepted",
              "accepted {method}", "authn_login_success"),
    ),
    "pam_unix(sshd:auth):": (_PAM_FAILURE,),
    "authentication": (_PAM_FAILURE,),  # old `sshd(pam_unix)[pid]: authentication failure`
    "Connection": (
        _rule(rf"Connection closed by {_PREAUTH_USER}(?P<ip>\S+)(?:{_PORT})? \[preauth\]\s*$",
              "preauth_disconnect", "connection closed before authentication"),
    ),
    "Disconnected": (
        _rule(rf"Disconnected from {_PREAUTH_USER}(?P<ip>\S+){_PORT} \[preauth\]\s*$",
              "preauth_disconnect", "disconnected before authentication"),
    ),
    "Received": (
        _rule(r"Received disconnect from (?P<ip>\S+?)(?:" + _PORT + r")?: ?\d+: .*\[preauth\]",
              "preauth_disconnect", "client disconnected before authentication"),
    ),
    "maximum": (
        _rule(rf"maximum authentication attempts exceeded for (?:invalid user )?{_USER_FROM}"
              rf"{_PORT}", "max_auth_attempts", "maximum authentication attempts exceeded"),
    ),
    "Disconnecting": (
        _rule(rf"Disconnecting {_PREAUTH_USER}(?P<ip>\S+){_PORT}: Too many authentication",
              "max_auth_attempts", "too many authentication failures"),
    ),
    "Did": (
        _rule(rf"Did not receive identification string from (?P<ip>\S+)(?:{_PORT})?",
              "no_identification", "no SSH identification string (scanner)"),
    ),
    "Bad": (
        _rule(rf"Bad protocol version identification .* from (?P<ip>\S+)(?:{_PORT})?$",
              "bad_protocol", "bad protocol version identification"),
    ),
    "banner": (
        _rule(rf"banner exchange: Connection from (?P<ip>\S+){_PORT}: invalid format",
              "bad_protocol", "invalid banner"),
    ),
    "Unable": (
        _rule(rf"Unable to negotiate with (?P<ip>\S+){_PORT}: no matching (?P<method>.*?) found",
              "negotiation_failed", "no matching {method}"),
    ),
    "ssh_dispatch_run_fatal:": (
        _rule(rf"ssh_dispatch_run_fatal: Connection from {_PREAUTH_USER}(?P<ip>\S+){_PORT}: "
              r"(?P<method>.*?)(?: \[preauth\])?$", "negotiation_failed", "{method}"),
    ),
    "Timeout": (
        _rule(rf"Timeout before authentication for (?P<ip>\S+){_PORT}", "preauth_timeout",
              "timeout before authentication"),
    ),
    "PAM:": (
        _rule(r"PAM: User not known to the underlying authentication module for illegal user "
              r"(?P<user>.*) from (?P<ip>\S+)", "invalid_user", "unknown user"),
    ),
}

#: Messages recognised but carrying no security event (or none apiwatch can attribute).
_IGNORED = (
    "pam_unix(sshd:session):", "pam_unix(sshd:auth): check pass", "session opened",
    "session closed", "check pass;", "input_userauth_request:", "PAM ", "reverse mapping",
    "Address ", "Connection closed by", "Connection from", "Connection reset",
    "Disconnected from", "Received disconnect from", "Disconnecting:", "Close session:",
    "Server listening", "Received signal", "Starting session", "User child", "Postponed",
    "Accepted key", "subsystem request", "Transferred:", "Changed root", "Exiting on signal",
    "kex_exchange_identification:", "Write failed", "Read error", "Timeout, client not",
    "syslogin_perform_logout", "pam_systemd", "debug", "Set /proc", "Nasty PTR record",
)
_LEVEL_PREFIXES = ("error: ", "fatal: ")
_REPEATED = re.compile(r"message repeated (\d+) times: \[ ?(.*)\]\s*$", re.S)

Match = tuple[_Rule, dict[str, str | Any]]


def classify(text: str) -> list[Match] | None:
    """The rule matches of one sshd message: [] if recognised and benign, None if unknown."""
    if text.startswith(_LEVEL_PREFIXES):
        text = text[7:]
    if text.startswith("message repeated"):
        repeated = _REPEATED.match(text)
        if repeated is None:
            return None
        count = int(repeated.group(1))
        if count > MAX_REPEAT:
            raise LineParseError(f"repeat count {count} exceeds {MAX_REPEAT}")
        inner = classify(repeated.group(2))
        return None if inner is None else inner * count
    space = text.find(" ")
    for rule in _RULES.get(text[:space] if space > 0 else text, ()):
        m = rule.pattern.match(text)
        if m is not None:
            return [(rule, m.groupdict())]
    return [] if text.startswith(_IGNORED) else None


def is_sshd(message: SyslogMessage) -> bool:
    """Whether a syslog message comes from sshd (`sshd`, `sshd-session`, `sshd(pam_unix)`)."""
    app = message.app_name
    return app is not None and app.startswith("sshd") and app[4:5] in ("", "-", "(")


class SshdParser:
    """Parses auth.log lines (RFC 3164, RFC 5424 or ISO 8601 prefixed) into sshd events.

    Lines of other programs in the same file are ignored (an empty list). `year` and `tz` date
    the year-less RFC 3164 timestamps (see YearlessClock).
    """

    dataset = DATASET

    def __init__(
        self, *, year: int | None = None, tz: tzinfo = UTC, now: datetime | None = None
    ) -> None:
        self.clock = YearlessClock(year, tz, now)
        # The clock hands back one datetime per distinct stamp: convert each once.
        self._last_stamp: datetime | None = None
        self._last_ns: int | None = None

    def __call__(self, line: str) -> list[Event]:
        """The events of one line; raises LineParseError if it is not syslog or not known sshd."""
        message = parse_syslog(line, self.clock)
        if not is_sshd(message):
            return []
        return self.message_events(message, line.rstrip("\r\n"))

    def message_events(self, message: SyslogMessage, original: str) -> list[Event]:
        """The events of an sshd syslog message; `original` is kept as `event.original`."""
        matches = classify(message.msg)
        if matches is None:
            raise LineParseError(f"unrecognised sshd message: {message.msg[:80]!r}")
        if not matches:
            return []
        base: dict[str, Any] = {"event.dataset": DATASET, "event.original": original}
        if message.app_name:
            base["process.name"] = message.app_name
        if message.procid and message.procid.isdigit():
            base["process.pid"] = int(message.procid)
        if message.hostname:
            base["host.hostname"] = message.hostname
        stamp = message.timestamp
        if stamp is not self._last_stamp:
            self._last_stamp = stamp
            self._last_ns = None if stamp is None else datetime_ns(stamp)
        ns = self._last_ns
        events = []
        for rule, groups in matches:
            fields = dict(base)
            fields["event.code"] = rule.code
            user = groups.get("user")
            if user:
                fields["user.name"] = user
            source_fields(fields, groups.get("ip") or "", groups.get("port"))
            reason = rule.reason.format(method=groups.get("method"))
            if groups.get("invalid"):
                reason += " (unknown user)"
            events.append(make_event(rule.action, fields, reason=reason, timestamp_ns=ns))
        return events
