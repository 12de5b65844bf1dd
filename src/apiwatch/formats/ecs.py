"""ECS JSON lines: one event per line, flat dotted keys, written by orjson.

The ECS logging specification (ecs_logging_spec.json) asks for `@timestamp`, `log.level` and
`message` first and allows dotted keys; `make_event` and the JSON-lines decoder build events
in that order, so encoding is one `orjson.dumps` call (see `_text.json_line` for the escaping
that keeps the record on one line).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from apiwatch.formats._text import json_line

_HEAD = ("@timestamp", "log.level", "message")


def encode_ecs(event: Mapping[str, Any]) -> bytes:
    """One ECS JSON line (ending in b"\\n") for `event`; never more than one line."""
    return json_line(event if in_spec_order(event) else _spec_order(event))


def compact_lines(events: Sequence[Mapping[str, Any]]) -> list[bytes] | None:
    """`encode_ecs` of each event without its line feed, in one `orjson.dumps` each; None if
    one of them needs more (out of spec order, or a value orjson refuses). Not escaped for
    DEL, C1 or U+2028/2029 as `encode_ecs` is: for a batch that a byte test (which refuses
    anything but ASCII, and control characters) judges next."""
    lines: list[bytes] = []
    for event in events:
        if not in_spec_order(event):
            return None
        try:
            lines.append(orjson.dumps(event))
        except (TypeError, orjson.JSONEncodeError):
            return None
    return lines


def in_spec_order(event: Iterable[str]) -> bool:
    """Whether `event` (its keys) begins with `@timestamp`, `log.level`, `message`, as encoded."""
    keys = iter(event)
    return (
        next(keys, None) == "@timestamp"
        and next(keys, None) == "log.level"
        and next(keys, None) == "message"
    )


def _spec_order(event: Mapping[str, Any]) -> dict[str, Any]:
    ordered = {key: event[key] for key in _HEAD if key in event}
    ordered.update(event)
    return ordered
