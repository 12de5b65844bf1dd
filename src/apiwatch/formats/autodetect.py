"""Choosing a log parser: guess a file's format from its first lines, and run a parser over lines.

Formats: `sshd` (auth.log), `nginx` and `apache` (access logs), `syslog` (any RFC 5424 / 3164
stream; its sshd messages go to the sshd parser), `jsonl` (apiwatch's ECS JSON lines, decoded by
`apiwatch.formats.jsonl`, not here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from itertools import islice

from apiwatch.errors import ApiwatchError
from apiwatch.events import Event
from apiwatch.formats.access_log import AccessLogParser
from apiwatch.formats.parsed import LineParseError, LineParser, ParseStats, failure_event
from apiwatch.formats.sshd import SshdParser, is_sshd
from apiwatch.formats.syslog_parse import SyslogMessage, parse_syslog

FORMATS = ("sshd", "nginx", "apache", "syslog", "jsonl")
#: Decodes an apiwatch JSON event found in a syslog message; raises ApiwatchError if invalid.
JsonDecoder = Callable[[str], Event]


class UnknownFormatError(ApiwatchError):
    """A log format name apiwatch has no line parser for."""


class SyslogParser:
    """Parses a generic syslog stream: sshd messages become sshd events, apiwatch JSON events
    go to `decode_json`, other programs' messages are ignored."""

    dataset = "syslog"

    def __init__(self, sshd: SshdParser, decode_json: JsonDecoder | None = None) -> None:
        self._sshd = sshd
        self._decode_json = decode_json

    def __call__(self, line: str) -> list[Event]:
        """The events of one line; raises LineParseError if it is not syslog."""
        message: SyslogMessage = parse_syslog(line, self._sshd.clock)
        if is_sshd(message):
            return self._sshd.message_events(message, line.rstrip("\r\n"))
        body = message.json_body()
        if body is None:
            return []
        if self._decode_json is None:
            raise LineParseError("apiwatch JSON event in syslog: no JSON decoder given")
        try:
            return [self._decode_json(body)]
        except ApiwatchError as exc:
            raise LineParseError(f"apiwatch JSON event in syslog: {exc}") from None


def make_parser(
    fmt: str,
    *,
    year: int | None = None,
    tz: tzinfo = UTC,
    now: datetime | None = None,
    decode_json: JsonDecoder | None = None,
) -> tuple[LineParser, str]:
    """The line parser for `fmt` and the `event.dataset` of its parse failures.

    Raises UnknownFormatError for `jsonl` (decoded by apiwatch.formats.jsonl) or an unknown name.
    """
    if fmt == "sshd":
        return SshdParser(year=year, tz=tz, now=now), "sshd.auth"
    if fmt in ("nginx", "apache"):
        dataset = f"{fmt}.access"
        return AccessLogParser(dataset), dataset
    if fmt == "syslog":
        return SyslogParser(SshdParser(year=year, tz=tz, now=now), decode_json), "syslog"
    raise UnknownFormatError(
        f"no line parser for format {fmt!r}: expected sshd, nginx, apache or syslog"
        + (" (JSON lines are decoded by apiwatch.formats.jsonl)" if fmt == "jsonl" else "")
    )


def parse_lines(
    fmt: str,
    lines: Iterable[str],
    *,
    stats: ParseStats | None = None,
    year: int | None = None,
    tz: tzinfo = UTC,
    now: datetime | None = None,
    decode_json: JsonDecoder | None = None,
) -> Iterator[Event]:
    """The events of `lines` in format `fmt`; a line that does not parse yields a
    `parse_failure` event with the raw line, so none is dropped. `stats` counts the lines.

    `year`, `tz` and `now` date year-less syslog timestamps (see YearlessClock).
    """
    parser, dataset = make_parser(fmt, year=year, tz=tz, now=now, decode_json=decode_json)
    if stats is None:
        stats = ParseStats()
    for line in lines:
        if not line.strip():
            stats.ignored += 1
            continue
        try:
            events = parser(line)
        except LineParseError as exc:
            stats.unparsed += 1
            yield failure_event(line.rstrip("\r\n"), dataset, exc.detail)
            continue
        if events:
            stats.parsed += 1
            stats.events += len(events)
            yield from events
        else:
            stats.ignored += 1


def _line_format(line: str, access: AccessLogParser) -> str | None:
    text = line.strip()
    if text.startswith("{") and text.endswith("}"):
        return "jsonl"
    try:
        access(text)
    except LineParseError:
        pass
    else:
        return "access"
    try:
        message = parse_syslog(text)
    except LineParseError:
        return None
    return "sshd" if is_sshd(message) else "syslog"


def detect_format(lines: Iterable[str], *, name: str = "", sample: int = 50) -> str | None:
    """Guess the format of a file from its first `sample` non-blank lines; None if unknown.

    The most common per-line verdict wins. A syslog file is `sshd` when sshd wrote at least
    half of its lines. nginx and Apache write the same Combined format: a file is `apache` when
    its `name` mentions apache or httpd, else `nginx`.
    """
    access = AccessLogParser()
    votes: dict[str, int] = {}
    for line in islice((x for x in lines if x.strip()), sample):
        verdict = _line_format(line, access)
        if verdict is not None:
            votes[verdict] = votes.get(verdict, 0) + 1
    if not votes:
        return None
    sshd, other = votes.pop("sshd", 0), votes.pop("syslog", 0)
    if sshd or other:
        votes["sshd" if sshd >= other else "syslog"] = sshd + other
    best = max(votes, key=lambda k: votes[k])
    if best == "access":
        lowered = name.lower()
        return "apache" if "apache" in lowered or "httpd" in lowered else "nginx"
    return best
