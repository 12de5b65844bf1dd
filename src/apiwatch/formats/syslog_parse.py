"""Reading syslog: RFC 5424 and RFC 3164 messages, and RFC 6587 TCP framing.

`parse_syslog` reads one message in either format (the RFC 3164 form also as written to files:
with or without `<PRI>`, with a BSD `Mmm dd HH:MM:SS` or an ISO 8601 timestamp). `Deframer`
splits a TCP byte stream into messages, octet-counted or newline-terminated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from apiwatch.errors import ApiwatchError
from apiwatch.formats.parsed import LineParseError

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_BOM = "\ufeff"

# RFC 5424 section 6: HEADER = PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID
_RFC5424 = re.compile(r"<(\d{1,3})>([1-9]\d{0,2}) (\S+) (\S+) (\S+) (\S+) (\S+) ?(.*)", re.S)
# RFC 3164 section 4.1.3 TAG: the program name, optionally `[pid]`, then a colon; some
# messages (kernels, `last message repeated`) have none.
_TAG = r"(?:([^\s\[\]:]+)(?:\[([^\]]*)\])?: ?)?(.*)"
# RFC 3164 section 4.1.2 TIMESTAMP `Mmm dd hh:mm:ss` (day space-padded), then HOSTNAME.
_BSD = re.compile(
    r"(?:<(\d{1,3})>)?([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d:\d\d:\d\d) (\S+) ?" + _TAG, re.S
)
# rsyslog's file format (RSYSLOG_FileFormat) puts an RFC 3339 timestamp in the same place.
_ISO = re.compile(
    r"(?:<(\d{1,3})>)?(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r" (\S+) ?" + _TAG,
    re.S,
)
# RFC 5424 section 6.3: SD-PARAM = PARAM-NAME "=" %d34 PARAM-VALUE %d34
_SD_ID = re.compile(r'\[([^= \]"]{1,32})')
_SD_PARAM = re.compile(r' ([^= \]"]{1,32})="([^"\\]*(?:\\.[^"\\]*)*)"', re.S)
# Section 6.3.3: only `"`, `\` and `]` are escaped; a backslash before anything else is kept.
_SD_ESCAPE = re.compile(r'\\(["\\\]])')


class SyslogParseError(LineParseError):
    """A line is not an RFC 5424 nor an RFC 3164 syslog message."""


class FramingError(ApiwatchError):
    """A syslog TCP stream broke RFC 6587 framing or the size limit; close the connection."""


@dataclass(frozen=True, slots=True)
class SyslogMessage:
    """One syslog message; fields the sender left out (`-` in RFC 5424) are None."""

    rfc: int  # 5424 or 3164
    facility: int | None
    severity: int | None
    timestamp: datetime | None
    hostname: str | None
    app_name: str | None
    procid: str | None
    msgid: str | None
    msg: str
    #: SD-ID -> {PARAM-NAME: value}, values unescaped; a repeated parameter keeps its last value.
    structured_data: dict[str, dict[str, str]] = field(default_factory=dict)

    def json_body(self) -> str | None:
        """The message text if it is a JSON object (an ECS event from apiwatch), else None.

        Decoding is the caller's: the JSON lines decoder validates fields against the schema.
        """
        body = self.msg.strip()
        return body if body.startswith("{") and body.endswith("}") else None


class YearlessClock:
    """Gives RFC 3164 timestamps, which carry no year nor zone, a year and a zone.

    With no `year`, the current one is used unless that puts the time more than a day in the
    future, then the previous year (a December line read in January). `tz` is the zone the
    sender wrote its local time in.
    """

    def __init__(
        self, year: int | None = None, tz: tzinfo = UTC, now: datetime | None = None
    ) -> None:
        self._year = year
        self.tz = tz
        self._horizon = (now or datetime.now(tz)) + timedelta(days=1)
        self._cache: dict[tuple[str, str, str], datetime] = {}

    def resolve(self, month: str, day: str, hms: str) -> datetime:
        """The datetime of `Mmm`, `dd`, `HH:MM:SS`; raises ValueError for an impossible date."""
        key = (month, day, hms)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        mon = _MONTHS.get(month)
        if mon is None:
            raise ValueError(f"unknown month {month!r}")
        hh, mm, ss = (int(x) for x in hms.split(":"))
        if self._year is not None:
            value = datetime(self._year, mon, int(day), hh, mm, ss, tzinfo=self.tz)
        else:
            year = self._horizon.year
            try:
                value = datetime(year, mon, int(day), hh, mm, ss, tzinfo=self.tz)
            except ValueError:  # 29 Feb of a common year: it can only be an earlier year
                value = datetime(year - 1, mon, int(day), hh, mm, ss, tzinfo=self.tz)
            if value > self._horizon:
                value = value.replace(year=year - 1)
        if len(self._cache) > 4096:  # log files move forward in time: old keys are dead
            self._cache.clear()
        self._cache[key] = value
        return value


def _pri(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    value = int(text)
    if value > 191 or (len(text) > 1 and text[0] == "0"):  # RFC 5424 section 6.2.1
        raise SyslogParseError(f"invalid PRI <{text}>: must be 0..191 without leading zeros")
    return value >> 3, value & 7


def _nil(value: str) -> str | None:
    return None if value == "-" else value


def _structured_data(text: str) -> tuple[dict[str, dict[str, str]], str]:
    """Parse STRUCTURED-DATA at the start of `text`; return it and the rest (the MSG part)."""
    if text.startswith("-"):
        return {}, text[1:]
    elements: dict[str, dict[str, str]] = {}
    pos = 0
    while pos < len(text) and text[pos] == "[":
        sd_id = _SD_ID.match(text, pos)
        if sd_id is None:
            raise SyslogParseError(f"invalid SD-ID at column {pos + 1}")
        params: dict[str, str] = {}
        pos = sd_id.end()
        while (param := _SD_PARAM.match(text, pos)) is not None:
            params[param.group(1)] = _SD_ESCAPE.sub(r"\1", param.group(2))
            pos = param.end()
        if text[pos : pos + 1] != "]":
            raise SyslogParseError(f"unterminated SD-ELEMENT [{sd_id.group(1)} at column {pos + 1}")
        elements[sd_id.group(1)] = params
        pos += 1
    if not elements:
        raise SyslogParseError("STRUCTURED-DATA must be '-' or start with '['")
    return elements, text[pos:]


def _parse_5424(m: re.Match[str]) -> SyslogMessage:
    facility, severity = _pri(m.group(1))
    stamp = m.group(3)
    try:
        timestamp = None if stamp == "-" else datetime.fromisoformat(stamp)
    except ValueError:
        raise SyslogParseError(f"invalid RFC 5424 TIMESTAMP {stamp[:40]!r}") from None
    if timestamp is not None and timestamp.tzinfo is None:
        raise SyslogParseError(f"RFC 5424 TIMESTAMP {stamp!r} has no offset")
    sd, rest = _structured_data(m.group(8))
    if rest and rest[0] == " ":
        rest = rest[1:]
    elif rest:
        raise SyslogParseError("STRUCTURED-DATA must be followed by a space")
    return SyslogMessage(
        5424, facility, severity, timestamp, _nil(m.group(4)), _nil(m.group(5)),
        _nil(m.group(6)), _nil(m.group(7)), rest.removeprefix(_BOM), sd,
    )


def parse_syslog(line: str, clock: YearlessClock | None = None) -> SyslogMessage:
    """Parse one RFC 5424 or RFC 3164 message (a trailing newline is dropped).

    `clock` dates RFC 3164 timestamps (default: the current year, UTC). Raises
    SyslogParseError saying which part is wrong.
    """
    line = line.rstrip("\r\n")
    if line.startswith("<") and (m := _RFC5424.match(line)) is not None:
        return _parse_5424(m)
    if (b := _BSD.match(line)) is not None:
        pri, month, day, hms, host, app, pid, msg = b.groups()
        try:
            stamp = (clock or YearlessClock()).resolve(month, day, hms)
        except ValueError as exc:
            raise SyslogParseError(f"invalid RFC 3164 TIMESTAMP: {exc}") from None
    elif (i := _ISO.match(line)) is not None:
        pri, iso, host, app, pid, msg = i.groups()
        try:
            stamp = datetime.fromisoformat(iso)
        except ValueError:
            raise SyslogParseError(f"invalid ISO 8601 timestamp {iso!r}") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=(clock or YearlessClock()).tz)
    else:
        raise SyslogParseError(
            "not a syslog line: expected <PRI>VERSION, 'Mmm dd hh:mm:ss' or an ISO 8601 time"
        )
    facility, severity = _pri(pri)
    return SyslogMessage(3164, facility, severity, stamp, host, app, pid, None, msg)


class Deframer:
    """Splits a syslog TCP byte stream into messages (RFC 6587).

    Each frame is read in the framing its first byte announces, as RFC 6587 section 3.4
    receivers do: a digit starts octet counting (`MSG-LEN SP SYSLOG-MSG`, section 3.4.1), `<`
    starts a non-transparent frame ended by LF (or NUL, which section 3.4.2 reports some senders
    use). Stray CR, LF and NUL between frames are skipped. A frame longer than `max_size`, or
    any other first byte, raises FramingError; the stream cannot be resynchronised after it.
    """

    def __init__(self, max_size: int = 64 * 1024) -> None:
        if max_size < 1:
            raise ValueError("max_size must be positive")
        self.max_size = max_size
        self._digits = len(str(max_size))
        self._buf = bytearray()
        self._need: int | None = None  # body length of the octet-counted frame being read
        self._offset = 0  # stream offset of _buf[0], for error messages
        self._broken: FramingError | None = None

    def _fail(self, detail: str) -> FramingError:
        self._broken = FramingError(f"syslog framing (RFC 6587): {detail}")
        return self._broken

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add received bytes; return the messages they complete (framing removed)."""
        if self._broken is not None:
            raise self._broken
        buf = self._buf
        buf += chunk
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        while pos < end:
            if self._need is not None:
                if end - pos < self._need:
                    break
                out.append(bytes(buf[pos : pos + self._need]))
                pos += self._need
                self._need = None
                continue
            first = buf[pos]
            if first in b"\n\r\x00":
                pos += 1
            elif 0x31 <= first <= 0x39:  # NONZERO-DIGIT starts MSG-LEN
                space = buf.find(b" ", pos, pos + self._digits + 1)
                if space == -1:
                    if end - pos > self._digits:
                        raise self._fail(f"octet count at byte {self._offset + pos} is too long")
                    break
                digits = bytes(buf[pos:space])
                if not digits.isdigit():
                    raise self._fail(f"invalid octet count {digits!r} at byte {self._offset + pos}")
                if int(digits) > self.max_size:
                    raise self._fail(f"frame of {int(digits)} bytes exceeds {self.max_size}")
                self._need = int(digits)
                pos = space + 1
            elif first == 0x3C:  # "<": a non-transparent frame
                stop = min(
                    (i for i in (buf.find(b"\n", pos), buf.find(b"\x00", pos)) if i != -1),
                    default=-1,
                )
                if stop == -1:
                    if end - pos > self.max_size:
                        raise self._fail(f"unterminated frame exceeds {self.max_size} bytes")
                    break
                message = bytes(buf[pos:stop]).removesuffix(b"\r")
                if len(message) > self.max_size:
                    raise self._fail(f"frame of {len(message)} bytes exceeds {self.max_size}")
                out.append(message)
                pos = stop + 1
            else:
                raise self._fail(
                    f"expected an octet count or '<' at byte {self._offset + pos}, "
                    f"got {bytes(buf[pos : pos + 1])!r}"
                )
        del buf[:pos]
        self._offset += pos
        return out

    def close(self) -> list[bytes]:
        """End of stream: the last newline-framed message may lack its LF; return it.

        Raises FramingError if an octet-counted frame was cut short.
        """
        if self._broken is not None:
            raise self._broken
        rest = bytes(self._buf)
        self._buf.clear()
        if self._need is not None or (rest and rest[0] != 0x3C):
            raise self._fail(f"stream ended inside a frame ({len(rest)} bytes pending)")
        return [rest.removesuffix(b"\r")] if rest else []
