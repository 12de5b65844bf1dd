"""A batch of sanitized events with their ECS JSON lines, encoded once for every sink.

The sanitizer's fast path reads an event's JSON encoding, and the spool and file sinks write
the same encoding: `sanitized_batch` encodes each event once, checks the whole batch at once
(`Sanitizer.encoded_clean`) and hands the lines to the sinks with the events. An event the
batch check does not clear is sanitized on its own and encoded again, so the lines are always
exactly `encode_ecs` of the sanitized events (a hypothesis test holds this).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from apiwatch.events import Event
from apiwatch.formats.ecs import compact_lines, encode_ecs
from apiwatch.sanitize import Sanitizer


class EncodedBatch(list[Event]):
    """Sanitized events, and in `lines` the ECS JSON line of each (no line feed)."""

    def __init__(self, events: list[Event], lines: list[bytes]) -> None:
        super().__init__(events)
        self.lines = lines


def ecs_lines(events: Sequence[Event]) -> list[bytes]:
    """The ECS JSON line (no line feed) of each event: from the batch if it was encoded."""
    if isinstance(events, EncodedBatch):
        return events.lines
    return [encode_ecs(event)[:-1] for event in events]


def sanitized_batch(
    events: list[Event],
    sanitize: Sanitizer,
    on_error: Callable[[], None],
    tick: Callable[[], None] | None,
) -> EncodedBatch:
    """`events` sanitized (changed in place) and encoded. An event that cannot be sanitized is
    left out and `on_error` called (inside the `except`, so it may log the traceback); `tick`,
    if given, runs after each event sanitized one by one (the emitter shares the GIL there)."""
    lines = compact_lines(events)
    if lines is not None and _clean(sanitize, events, lines):
        return EncodedBatch(events, lines)
    clean: list[Event] = []
    clean_lines: list[bytes] = []
    for event in events:
        try:
            sanitized = sanitize(event)
            clean_lines.append(encode_ecs(sanitized)[:-1])
        except Exception:
            on_error()
            continue
        clean.append(sanitized)
        if tick is not None:
            tick()
    return EncodedBatch(clean, clean_lines)


def _clean(sanitize: Sanitizer, events: list[Event], lines: list[bytes]) -> bool:
    try:
        return sanitize.encoded_clean(events, lines)
    except Exception:  # the events then go one by one, each failure counted on its own
        return False
