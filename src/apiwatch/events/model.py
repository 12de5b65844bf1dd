"""The Event: a flat mapping keyed by ECS dotted field names.

A flat dict is what every later stage wants (group-by on `source.ip`, index columns, encoders) and
what is cheapest to build; the ECS JSON encoder writes it with dotted keys, which the ECS logging
specification allows. `@timestamp`, `log.level` and `message` come first, as that spec asks.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from typing import Any

from apiwatch.events.clock import format_timestamp
from apiwatch.events.fields import ECS_VERSION
from apiwatch.events.ids import uuid7
from apiwatch.events.vocabulary import lookup

Event = dict[str, Any]

_LOG_LEVEL = {"INFO": "info", "WARN": "warn", "CRITICAL": "critical"}
#: Syslog severities (RFC 5424 section 6.2.1) of the OWASP levels, carried in ECS `event.severity`.
SEVERITY = {"INFO": 6, "WARN": 4, "CRITICAL": 2}


def make_event(
    action: str,
    fields: Mapping[str, Any] | None = None,
    *,
    message: str | None = None,
    outcome: str | None = None,
    reason: str | None = None,
    timestamp_ns: int | None = None,
) -> Event:
    """Build the event for an OWASP vocabulary `action`, then add `fields` (ECS dotted names).

    Level, `event.category`, `event.type` and the default `event.outcome` come from the
    vocabulary; `message` defaults to the action name. Fields are not sanitized here: the
    sanitizer runs on every event before it is encoded or stored.
    """
    ns = time.time_ns() if timestamp_ns is None else timestamp_ns
    try:
        level, kind, name, category, types, outcome, severity = _HEADS[action, outcome]
    except KeyError:
        level, kind, name, category, types, outcome, severity = _head(action, outcome)
    event: Event = {
        "@timestamp": format_timestamp(ns),
        "log.level": level,
        "message": action if message is None else message,
        "ecs.version": ECS_VERSION,
        "event.id": uuid7(ns),
        "event.kind": kind,
        "event.action": name,
        "event.category": list(category),
        "event.type": list(types),
        "event.outcome": outcome,
        "event.severity": severity,
    }
    if reason is not None:
        event["event.reason"] = reason
    if fields:
        event.update(fields)
    return event


#: What `make_event` takes from the vocabulary, by (action, outcome asked for): log level, kind,
#: name, categories, types, outcome, severity. Actions are never redefined, so this never goes
#: stale; it holds known actions and ECS outcomes only, a few hundred entries at most.
_OUTCOMES = frozenset({None, "success", "failure", "unknown"})
_Head = tuple[str, str, str, tuple[str, ...], tuple[str, ...], str, int]
_HEADS: dict[tuple[str, str | None], _Head] = {}


def _head(action: str, outcome: str | None) -> _Head:
    spec = lookup(action)
    final = spec.outcome if outcome is None else outcome
    level = spec.level_for(final)
    head = (_LOG_LEVEL[level], spec.kind, spec.name, tuple(spec.category), tuple(spec.type),
            final, SEVERITY[level])
    if outcome in _OUTCOMES:  # an app may pass any string: only the ECS values are kept
        _HEADS[action, outcome] = head
    return head


class SequenceCounter:
    """Numbers one source's events 1, 2, 3...; the collector finds gaps and replays by it."""

    def __init__(self, start: int = 1) -> None:
        self._counter = itertools.count(start)

    def next(self) -> int:
        """The next sequence number; safe from several threads.

        `itertools.count` advances in one C call under the GIL, so no lock is needed (the
        thread-safety test in tests/events holds this on every interpreter we run on).
        """
        return next(self._counter)

    def stamp(self, event: Event) -> Event:
        """Set `apiwatch.seq` on `event` and return it."""
        event["apiwatch.seq"] = self.next()
        return event
