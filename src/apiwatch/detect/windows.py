"""Streaming windows over event time: each keeps one group's state and costs O(1) amortised.

This module holds the helpers and the windows that count within a span (leaky bucket, count,
distinct, ratio, sum, sequence, each); `history` holds those that compare with a group's
history (first seen, baseline, absence).

A window is shared by all groups of a rule; `new()` makes one group's state and `add(state, ts,
event)` feeds it an event at `ts` (seconds since the epoch, event time) and returns a one-line
reason when the rule fires, else None. Windows that count towards a threshold start over after
firing (the engine's suppression window then folds repeats into the alert); first-seen,
baseline and absence keep their history, since that history is what they compare against.
`horizon` is how long an idle group's state still matters: the engine may evict it after that.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from apiwatch.detect.filters import Predicate
from apiwatch.detect.hll import HyperLogLog
from apiwatch.events import Event

#: A field to read, or alternatives read in order, the first present one winning.
FieldRef = tuple[str, ...]


def first_value(event: Event, ref: FieldRef) -> Any:
    """The value of the first field of `ref` present in `event`, or None."""
    for name in ref:
        value = event.get(name)
        if value is not None:
            return value
    return None


def as_strings(value: Any) -> Sequence[str]:
    """A field's value as strings: none for None, each element of a list, else the scalar."""
    if value is None:
        return ()
    if isinstance(value, list):
        return [str(item) for item in value]
    return (str(value),)


#: A window of the last few event times is a list up to this many (a new list costs a tenth
#: of a deque, whose first block holds 64 items), a deque with `maxlen` beyond.
_SHORT_TIMES = 32


def recent_times(keep: int) -> list[float] | deque[float]:
    """An empty window of the last `keep` event times; `push_time` adds to it."""
    return [] if keep <= _SHORT_TIMES else deque(maxlen=keep)


def push_time(times: list[float] | deque[float], ts: float, keep: int) -> None:
    """Add `ts` to a `recent_times(keep)` window, dropping the oldest beyond `keep`."""
    times.append(ts)
    if len(times) > keep:  # a list's: a deque has dropped it already
        del times[0]


def span(seconds: float) -> str:
    """A duration as a rule would write it: `2h`, `10m`, `30s`."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


class AnyStart:
    """Windows whose state any matching event may create (`opens` is None)."""

    opens: Predicate | None = None
    opens_spec: Any = None  # the filter mapping compiled into `opens`, if known


class LeakyBucket(AnyStart):
    """CrowdSec's leaky bucket: each event adds 1, the level drains by one every `leak`
    seconds, and the rule fires when the level exceeds `capacity` (capacity + 1 events in a
    burst)."""

    kind = "leaky_bucket"

    def __init__(self, capacity: int, leak: float) -> None:
        self.capacity = capacity
        self.leak = leak
        self.horizon = leak * (capacity + 1)

    def new(self) -> list[float]:
        return [0.0, 0.0]  # level, time of the last event

    def add(self, state: list[float], ts: float, event: Event) -> str | None:
        level, last = state
        if ts > last:
            level = max(0.0, level - (ts - last) / self.leak)
            state[1] = ts
        level += 1.0
        if level > self.capacity:
            state[0] = 0.0
            return f"more than {self.capacity} events, leaking one per {span(self.leak)}"
        state[0] = level
        return None


class Count(AnyStart):
    """At least `threshold` events within `seconds`; with `min_gap`, an event closer than that
    to the last counted one is not counted (paced, low-and-slow attempts)."""

    kind = "count"

    def __init__(self, threshold: int, seconds: float, min_gap: float = 0.0) -> None:
        self.threshold = threshold
        self.seconds = seconds
        self.min_gap = min_gap
        self.horizon = seconds

    def new(self) -> list[float] | deque[float]:
        return recent_times(self.threshold)

    def add(self, state: list[float] | deque[float], ts: float, event: Event) -> str | None:
        if self.min_gap and state and ts - state[-1] < self.min_gap:
            return None
        push_time(state, ts, self.threshold)
        if len(state) == self.threshold and ts - state[0] <= self.seconds:
            state.clear()
            gap = f", each {span(self.min_gap)} apart" if self.min_gap else ""
            return f"{self.threshold} events within {span(self.seconds)}{gap}"
        return None


class _DistinctSet:
    """Distinct values seen in the last `seconds`: exact (value -> last time, oldest first)
    up to `exact_limit` values, then a HyperLogLog per tumbling window of `seconds`."""

    __slots__ = ("epoch", "exact", "hll", "latest")

    def __init__(self) -> None:
        self.exact: OrderedDict[str, float] | None = OrderedDict()
        self.hll: HyperLogLog | None = None
        self.epoch = 0
        self.latest: str | None = None  # the newest value of `exact` (a group repeats it)

    def add(self, value: str, ts: float, seconds: float, exact_limit: int) -> float:
        exact = self.exact
        if exact is not None:
            if value in exact:
                exact.move_to_end(value)
            exact[value] = ts
            self.latest = value
            cutoff = ts - seconds
            while exact:
                oldest = next(iter(exact.values()))
                if oldest >= cutoff:
                    break
                exact.popitem(last=False)
            if len(exact) <= exact_limit:
                return float(len(exact))
            self.hll = HyperLogLog()
            self.epoch = int(ts // seconds)
            for known in exact:
                self.hll.add(known)
            self.exact = None
        assert self.hll is not None
        epoch = int(ts // seconds)
        if epoch != self.epoch:  # sliding becomes tumbling once the set is sketched
            self.hll, self.epoch = HyperLogLog(), epoch
        self.hll.add(value)
        return self.hll.estimate()


class Distinct(AnyStart):
    """Distinct values of one or more fields within `seconds`; fires when every field reaches
    its threshold (`{source.ip: 50, user.name: 50}`). Exact up to `exact_limit` values per field,
    then HyperLogLog."""

    kind = "distinct"

    def __init__(
        self, fields: Sequence[tuple[FieldRef, int]], seconds: float, exact_limit: int = 2048
    ) -> None:
        self.fields = tuple(fields)
        self.seconds = seconds
        self.exact_limit = exact_limit
        self.horizon = seconds
        # The common window counts one plain field: `add` has a shortcut for it.
        one = len(self.fields) == 1 and len(self.fields[0][0]) == 1
        self._one = self.fields[0][0][0] if one else None
        self._threshold = self.fields[0][1]

    def new(self) -> list[_DistinctSet]:
        return [_DistinctSet() for _ in self.fields]

    def add(self, state: list[_DistinctSet], ts: float, event: Event) -> str | None:
        if self._one is not None:
            # The shortcut for one field holding a string while the set is exact and has room:
            # what `_DistinctSet.add` does then, without the calls.
            value = event.get(self._one)
            tracker = state[0]
            exact = tracker.exact
            if type(value) is str and exact is not None and len(exact) < self.exact_limit:
                if value != tracker.latest:  # else it is the newest already
                    if value in exact:
                        exact.move_to_end(value)
                    tracker.latest = value
                exact[value] = ts
                if len(exact) > 1:  # else the only value is this one, at `ts`: none expired
                    cutoff = ts - self.seconds
                    while exact:
                        if next(iter(exact.values())) >= cutoff:
                            break
                        exact.popitem(last=False)
                n = len(exact)
                return None if n < self._threshold else self._fire(state, [float(n)])
        reached = True
        counts = []
        for (ref, threshold), tracker in zip(self.fields, state, strict=True):
            value = event.get(ref[0]) if len(ref) == 1 else first_value(event, ref)
            if type(value) is str:  # the common case, without `as_strings`
                count = tracker.add(value, ts, self.seconds, self.exact_limit)
            else:
                count = 0.0
                for item in as_strings(value):
                    count = tracker.add(item, ts, self.seconds, self.exact_limit)
            if count == 0.0:  # the event lacks this field: look at what is already there
                exact = tracker.exact
                count = float(len(exact)) if exact is not None else 0.0
            counts.append(count)
            if count < threshold:
                reached = False
        return self._fire(state, counts) if reached else None

    def _fire(self, state: list[_DistinctSet], counts: list[float]) -> str:
        state[:] = self.new()
        what = ", ".join(
            f"{c:.0f} distinct {ref[0]}" for (ref, _), c in zip(self.fields, counts, strict=True)
        )
        return f"{what} within {span(self.seconds)}"


class Ratio(AnyStart):
    """The share of events matching `match` within `seconds` (six sliding sub-buckets), once
    at least `min_total` events were seen."""

    kind = "ratio"
    _SLOTS = 6

    def __init__(self, match: Predicate, threshold: float, min_total: int, seconds: float) -> None:
        self.match = match
        self.threshold = threshold
        self.min_total = min_total
        self.seconds = seconds
        self.horizon = seconds
        self._width = seconds / self._SLOTS

    def new(self) -> list[Any]:
        # [slot index of the newest sub-bucket, totals per slot, matches per slot]
        return [-1, [0] * self._SLOTS, [0] * self._SLOTS]

    def add(self, state: list[Any], ts: float, event: Event) -> str | None:
        slot = int(ts // self._width)
        newest, totals, hits = state
        if slot > newest:
            for s in range(max(newest + 1, slot - self._SLOTS + 1), slot + 1):
                totals[s % self._SLOTS] = 0
                hits[s % self._SLOTS] = 0
            state[0] = slot
        elif slot <= newest - self._SLOTS:
            return None  # older than the window (within the engine's lateness)
        totals[slot % self._SLOTS] += 1
        if self.match(event):
            hits[slot % self._SLOTS] += 1
        total = sum(totals)
        if total < self.min_total:
            return None
        share = sum(hits) / total
        if share < self.threshold:
            return None
        state[:] = self.new()
        return f"{share:.0%} of {total} events within {span(self.seconds)}"


class Sum(AnyStart):
    """The sum of a numeric field within `seconds` reaches `threshold`."""

    kind = "sum"

    def __init__(self, ref: FieldRef, threshold: float, seconds: float) -> None:
        self.ref = ref
        self.threshold = threshold
        self.seconds = seconds
        self.horizon = seconds

    def new(self) -> list[Any]:
        return [0.0, deque()]  # running sum, (time, value) pairs oldest first

    def add(self, state: list[Any], ts: float, event: Event) -> str | None:
        value = first_value(event, self.ref)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        pairs: deque[tuple[float, float]] = state[1]
        pairs.append((ts, float(value)))
        total = state[0] + value
        cutoff = ts - self.seconds
        while pairs[0][0] < cutoff:
            total -= pairs.popleft()[1]
        state[0] = total
        if total >= self.threshold:
            state[0] = 0.0
            pairs.clear()
            return f"sum of {self.ref[0]} {total:g} within {span(self.seconds)}"
        return None


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a sequence: events matching `match`, at least `min` of them."""

    match: Predicate
    min: int
    label: str
    spec: Any = field(default=None, compare=False)  # the filter mapping compiled into `match`


@dataclass(slots=True)
class _SequenceState:
    firsts: list[float] | deque[float]
    step: int = 0
    count: int = 0


class Ordered:
    """Ordered steps within `seconds` ("5 failures then a success"). The first step slides
    (its last `min` matches are kept); later steps count from when the previous one completed."""

    kind = "sequence"

    def __init__(self, steps: Sequence[Step], seconds: float) -> None:
        self.steps = tuple(steps)
        # Only an event of the first step opens a group: the others have nothing to follow.
        self.opens: Predicate | None = self.steps[0].match
        self.opens_spec = self.steps[0].spec
        self.seconds = seconds
        self.horizon = seconds

    def new(self) -> _SequenceState:
        return _SequenceState(recent_times(self.steps[0].min))

    def add(self, state: _SequenceState, ts: float, event: Event) -> str | None:
        firsts = state.firsts
        if state.step and ts - firsts[0] > self.seconds:
            state.step = state.count = 0
        if state.step:
            step = self.steps[state.step]
            if step.match(event):
                state.count += 1
                if state.count >= step.min:
                    state.step += 1
                    state.count = 0
                    if state.step == len(self.steps):
                        firsts.clear()
                        state.step = 0
                        return " then ".join(
                            f"{s.min} x {s.label}" for s in self.steps
                        ) + f" within {span(self.seconds)}"
                return None
        first = self.steps[0]
        if first.match(event):
            push_time(firsts, ts, first.min)
            if len(firsts) == first.min and ts - firsts[0] <= self.seconds and not state.step:
                state.step, state.count = 1, 0
        return None


class Each(AnyStart):
    """Every matching event fires (sensitive changes, reported gaps)."""

    kind = "each"
    horizon = 0.0

    def new(self) -> None:
        return None

    def add(self, state: None, ts: float, event: Event) -> str | None:
        return str(event.get("event.action", "event"))
