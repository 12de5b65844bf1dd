"""What the log parsers share: line counters, the failure type, and field helpers.

A line parser takes one line and returns a list of events: several for a line that stands for
several (`message repeated 5 times`), none for a line it recognises but that carries no security
event (an sshd session opened). A line it cannot read raises `LineParseError`; the driver turns
that into a `parse_failure` event keeping the raw line, so nothing read is ever dropped.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apiwatch.errors import DecodeError
from apiwatch.events import Event, make_event
from apiwatch.events.ipaddr import is_ip

#: The signature every line parser has.
LineParser = Callable[[str], list[Event]]


class LineParseError(DecodeError):
    """A log line is not in the format its parser reads; `detail` says what was expected."""


@dataclass(slots=True)
class ParseStats:
    """Line counters of one parsing run: every line read lands in exactly one of the three."""

    parsed: int = 0  # lines that gave at least one event
    ignored: int = 0  # lines recognised by a rule but carrying no security event (or blank)
    unparsed: int = 0  # lines returned as `parse_failure` events
    events: int = 0  # events yielded for parsed lines (a repeated line gives several)

    @property
    def lines(self) -> int:
        """Every line counted so far."""
        return self.parsed + self.ignored + self.unparsed


def failure_event(line: str, dataset: str, reason: str) -> Event:
    """The `parse_failure` event for a line that did not parse: the raw line and why."""
    return make_event(
        "parse_failure",
        {"event.original": line, "event.dataset": dataset},
        reason=reason,
    )


def source_fields(fields: dict[str, Any], address: str, port: str | None = None) -> None:
    """Set `source.address` and `source.ip` (an address) or `source.domain` (a host name)."""
    if not address or address == "-":
        return
    fields["source.address"] = address
    if is_ip(address):
        fields["source.ip"] = address
    else:
        fields["source.domain"] = address
    if port:
        fields["source.port"] = int(port)


def datetime_ns(value: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime, exactly (no float rounding)."""
    seconds = calendar.timegm(value.utctimetuple())
    return (seconds * 1_000_000 + value.microsecond) * 1000
