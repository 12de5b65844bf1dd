"""Per-source sequence tracking: duplicates out, gaps recorded, late arrivals let in.

Each source numbers its events (`apiwatch.seq`, 1, 2, 3...). A retried batch repeats numbers the
collector already holds: those events are duplicates and add nothing. A jump forward leaves a gap
that is remembered, so that the missing events are still accepted if they arrive later, and the
gap itself becomes an event. The state is small, snapshotted beside the ledger and rebuilt from
the ledger's tail after a crash, so it never disagrees with what was acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Missing sequence numbers remembered per source; older ones are forgotten (and counted).
MAX_MISSING = 100_000
RATE_WINDOW_SECONDS = 60


@dataclass
class SourceState:
    """What the collector knows of one source."""

    high: int = 0
    missing: set[int] = field(default_factory=set)
    events: int = 0
    duplicates: int = 0
    gaps: int = 0
    gap_events_missing: int = 0
    forgotten_missing: int = 0
    last_received_ns: int = 0
    last_event_time: str = ""
    #: Events per second over the last minute: (second, count) slots.
    per_second: dict[int, int] = field(default_factory=dict)

    def events_last_minute(self, now_ns: int) -> int:
        """Events received during the last RATE_WINDOW_SECONDS seconds."""
        floor = now_ns // 1_000_000_000 - RATE_WINDOW_SECONDS
        return sum(n for sec, n in self.per_second.items() if sec > floor)

    def to_json(self) -> dict[str, Any]:
        """The durable part of the state (counters and the sequence window)."""
        return {
            "high": self.high,
            "missing": sorted(self.missing),
            "events": self.events,
            "duplicates": self.duplicates,
            "gaps": self.gaps,
            "gap_events_missing": self.gap_events_missing,
            "forgotten_missing": self.forgotten_missing,
            "last_received_ns": self.last_received_ns,
            "last_event_time": self.last_event_time,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SourceState:
        """Rebuild from `to_json` output."""
        fields = dict(data)
        fields["missing"] = set(fields.get("missing", ()))
        return cls(**fields)


@dataclass
class Admission:
    """The verdict on one batch: which events are new, how many repeat, which gaps opened."""

    source: str
    new: list[dict[str, Any]]
    duplicates: int
    gaps: list[tuple[int, int]]
    high: int
    filled: set[int]
    opened: set[int]


class SourceTracker:
    """Sequence state of every source. Not thread-safe: the pipeline holds its write lock."""

    def __init__(self, states: Mapping[str, SourceState] | None = None) -> None:
        self.states: dict[str, SourceState] = dict(states or {})

    def admit(self, source: str, events: Iterable[dict[str, Any]]) -> Admission:
        """Sort a batch into new events and duplicates without changing any state.

        Call `commit` with the result once the new events are durable; until then a failure
        leaves the tracker as it was, so a retry is judged the same way.
        """
        state = self.states.get(source) or SourceState()
        high = state.high
        new: list[dict[str, Any]] = []
        duplicates = 0
        gaps: list[tuple[int, int]] = []
        filled: set[int] = set()
        opened: set[int] = set()
        # A number seen earlier in this batch is at most `high`, outside `opened` and in
        # `filled` if it was missing: the branches below count its repeat as a duplicate.
        for event in events:
            seq = event.get("apiwatch.seq")
            if type(seq) is not int or seq <= 0:  # not a sequence number (bool is no int here)
                new.append(event)
                continue
            if seq > high:
                if seq > high + 1:
                    gaps.append((high + 1, seq - 1))
                    opened.update(range(high + 1, min(seq, high + 1 + MAX_MISSING)))
                high = seq
            elif seq in opened:
                opened.discard(seq)
            elif seq in state.missing and seq not in filled:
                filled.add(seq)
            else:
                duplicates += 1
                continue
            new.append(event)
        return Admission(source, new, duplicates, gaps, high, filled, opened)

    def commit(self, admission: Admission, received_ns: int) -> None:
        """Apply an admitted batch once it is durable."""
        state = self.states.setdefault(admission.source, SourceState())
        state.high = admission.high
        state.missing -= admission.filled
        state.missing |= admission.opened
        if len(state.missing) > MAX_MISSING:
            drop = sorted(state.missing)[: len(state.missing) - MAX_MISSING]
            state.missing.difference_update(drop)
            state.forgotten_missing += len(drop)
        state.events += len(admission.new)
        state.duplicates += admission.duplicates
        state.gaps += len(admission.gaps)
        state.gap_events_missing += sum(last - first + 1 for first, last in admission.gaps)
        state.last_received_ns = received_ns
        if admission.new:
            state.last_event_time = str(admission.new[-1].get("@timestamp", ""))
        second = received_ns // 1_000_000_000
        state.per_second[second] = state.per_second.get(second, 0) + len(admission.new)
        if len(state.per_second) > RATE_WINDOW_SECONDS:
            floor = second - RATE_WINDOW_SECONDS
            state.per_second = {s: n for s, n in state.per_second.items() if s > floor}

    def to_json(self) -> dict[str, Any]:
        """All sources' durable state."""
        return {name: state.to_json() for name, state in self.states.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SourceTracker:
        """Rebuild from `to_json` output."""
        return cls({name: SourceState.from_json(s) for name, s in data.items()})
