"""Streaming windows over event time: each keeps one group's state and costs O(1) amortised.

A window is shared by all groups of a rule; `new()` makes one group's state and `add(state, ts,
event)` feeds it an event at `ts` (seconds since the epoch, event time) and returns a one-line
reason when the rule fires, else None. Windows that count towards a threshold start over after
firing (the engine's suppression window then folds repeats into the alert); first-seen,
baseline and absence keep their history, since that history is what they compare against.
`horizon` is how long an idle group's state still matters: the engine may evict it after that.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
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


def iter_values(event: Event, ref: FieldRef) -> Iterator[str]:
    """The value(s) of `ref` as strings: each element of a list field, or the scalar."""
    value = first_value(event, ref)
    if value is None:
        return
    if isinstance(value, list):
        for item in value:
            yield str(item)
    else:
        yield str(value)


@lru_cache(maxsize=65536)
def network_of(address: str, v4_prefix: int = 24, v6_prefix: int = 48) -> str:
    """The network an address belongs to (`203.0.113.0/24`, `2001:db8:1::/48`); the text itself
    if it is not an address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    prefix = v4_prefix if ip.version == 4 else v6_prefix
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _span(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


class _AnyStart:
    """Windows whose state any matching event may create."""

    opens: Predicate | None = None


class LeakyBucket(_AnyStart):
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
            return f"more than {self.capacity} events, leaking one per {_span(self.leak)}"
        state[0] = level
        return None


class Count(_AnyStart):
    """At least `threshold` events within `seconds`; with `min_gap`, an event closer than that
    to the last counted one is not counted (paced, low-and-slow attempts)."""

    kind = "count"

    def __init__(self, threshold: int, seconds: float, min_gap: float = 0.0) -> None:
        self.threshold = threshold
        self.seconds = seconds
        self.min_gap = min_gap
        self.horizon = seconds

    def new(self) -> deque[float]:
        return deque(maxlen=self.threshold)

    def add(self, state: deque[float], ts: float, event: Event) -> str | None:
        if self.min_gap and state and ts - state[-1] < self.min_gap:
            return None
        state.append(ts)
        if len(state) == self.threshold and ts - state[0] <= self.seconds:
            state.clear()
            gap = f", each {_span(self.min_gap)} apart" if self.min_gap else ""
            return f"{self.threshold} events within {_span(self.seconds)}{gap}"
        return None


class _DistinctSet:
    """Distinct values seen in the last `seconds`: exact (value -> last time, oldest first)
    up to `exact_limit` values, then a HyperLogLog per tumbling window of `seconds`."""

    __slots__ = ("epoch", "exact", "hll")

    def __init__(self) -> None:
        self.exact: OrderedDict[str, float] | None = OrderedDict()
        self.hll: HyperLogLog | None = None
        self.epoch = 0

    def add(self, value: str, ts: float, seconds: float, exact_limit: int) -> float:
        exact = self.exact
        if exact is not None:
            if value in exact:
                exact.move_to_end(value)
            exact[value] = ts
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


class Distinct(_AnyStart):
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

    def new(self) -> list[_DistinctSet]:
        return [_DistinctSet() for _ in self.fields]

    def add(self, state: list[_DistinctSet], ts: float, event: Event) -> str | None:
        reached = True
        counts = []
        for (ref, threshold), tracker in zip(self.fields, state, strict=True):
            count = 0.0
            for value in iter_values(event, ref):
                count = tracker.add(value, ts, self.seconds, self.exact_limit)
            if count == 0.0:  # the event lacks this field: look at what is already there
                exact = tracker.exact
                count = float(len(exact)) if exact is not None else 0.0
            counts.append(count)
            if count < threshold:
                reached = False
        if not reached:
            return None
        state[:] = self.new()
        what = ", ".join(
            f"{c:.0f} distinct {ref[0]}" for (ref, _), c in zip(self.fields, counts, strict=True)
        )
        return f"{what} within {_span(self.seconds)}"


class Ratio(_AnyStart):
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
        return f"{share:.0%} of {total} events within {_span(self.seconds)}"


class Sum(_AnyStart):
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
            return f"sum of {self.ref[0]} {total:g} within {_span(self.seconds)}"
        return None


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a sequence: events matching `match`, at least `min` of them."""

    match: Predicate
    min: int
    label: str


@dataclass(slots=True)
class _SequenceState:
    firsts: deque[float]
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
        self.seconds = seconds
        self.horizon = seconds

    def new(self) -> _SequenceState:
        return _SequenceState(deque(maxlen=self.steps[0].min))

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
                        ) + f" within {_span(self.seconds)}"
                return None
        first = self.steps[0]
        if first.match(event):
            firsts.append(ts)
            if len(firsts) == first.min and ts - firsts[0] <= self.seconds and not state.step:
                state.step, state.count = 1, 0
        return None


@dataclass(slots=True)
class _SeenState:
    values: OrderedDict[str, float] = field(default_factory=OrderedDict)
    events: int = 0
    since: float = 0.0


class FirstSeen(_AnyStart):
    """A value never seen for this group (or not within `forget`, the decay of its history),
    once the group has a history of `learn_events` events over `learn_seconds`. With
    `network`, addresses are reduced to their /24 (IPv4) or /48 (IPv6) first."""

    kind = "first_seen"

    def __init__(
        self,
        ref: FieldRef,
        *,
        learn_events: int,
        learn_seconds: float,
        forget: float,
        max_values: int = 256,
        network: bool = False,
    ) -> None:
        self.ref = ref
        self.learn_events = learn_events
        self.learn_seconds = learn_seconds
        self.forget = forget
        self.max_values = max_values
        self.network = network
        self.horizon = forget

    def new(self) -> _SeenState:
        return _SeenState()

    def add(self, state: _SeenState, ts: float, event: Event) -> str | None:
        raw = first_value(event, self.ref)
        if raw is None:
            return None
        value = network_of(str(raw)) if self.network else str(raw)
        values = state.values
        if not state.events:
            state.since = ts
        state.events += 1
        if value in values:
            values.move_to_end(value)
            values[value] = ts
            return None
        learned = state.events > self.learn_events and ts - state.since >= self.learn_seconds
        values[value] = ts
        cutoff = ts - self.forget
        while len(values) > self.max_values or next(iter(values.values())) < cutoff:
            values.popitem(last=False)
        if learned:
            return f"new {self.ref[0]} {value} after {len(values) - 1} known"
        return None


@dataclass(slots=True)
class _BaselineState:
    bucket: int = -1
    total: float = 0.0
    hits: float = 0.0
    mean: float = 0.0
    var: float = 0.0
    buckets: int = 0
    fired: bool = False


class Baseline(_AnyStart):
    """The value of the current interval against the group's own EWMA mean and deviation.

    The measure is the event count, the sum of `sum_ref`, or the share matching `match`; the
    rule fires during an interval once its value reaches `min_value` and exceeds mean + `k`
    deviations (at least `min_deviation`), after `warmup` intervals of history. The mean and
    variance are the exponentially weighted ones of Finch, "Incremental calculation of weighted
    mean and variance" (2009); an interval that fired is kept out of the baseline.
    """

    kind = "baseline"

    def __init__(
        self,
        *,
        interval: float,
        alpha: float,
        k: float,
        min_value: float,
        min_deviation: float,
        warmup: int,
        sum_ref: FieldRef | None = None,
        match: Predicate | None = None,
        min_total: int = 0,
    ) -> None:
        self.interval = interval
        self.alpha = alpha
        self.k = k
        self.min_value = min_value
        self.min_deviation = min_deviation
        self.warmup = warmup
        self.sum_ref = sum_ref
        self.match = match
        self.min_total = min_total
        self.horizon = interval * max(warmup, 1) * 10

    def new(self) -> _BaselineState:
        return _BaselineState()

    def _value(self, st: _BaselineState) -> float | None:
        if self.match is None:
            return st.total if self.sum_ref is None else st.hits
        return st.hits / st.total if st.total >= self.min_total else None

    def _learn(self, st: _BaselineState, value: float) -> None:
        diff = value - st.mean
        incr = self.alpha * diff
        st.mean += incr
        st.var = (1 - self.alpha) * (st.var + diff * incr)
        st.buckets += 1

    def add(self, state: _BaselineState, ts: float, event: Event) -> str | None:
        bucket = int(ts // self.interval)
        st = state
        if bucket > st.bucket:
            if st.bucket >= 0:
                closed = self._value(st)
                if closed is not None and not st.fired:
                    self._learn(st, closed)
                # Empty intervals in between count as zero for counts and sums (bounded).
                if self.match is None:
                    for _ in range(min(bucket - st.bucket - 1, 64)):
                        self._learn(st, 0.0)
            st.bucket, st.total, st.hits, st.fired = bucket, 0.0, 0.0, False
        elif bucket < st.bucket:
            return None  # a late event for a closed interval: its baseline is already learnt
        st.total += 1
        if self.sum_ref is not None:
            value = first_value(event, self.sum_ref)
            if isinstance(value, int | float) and not isinstance(value, bool):
                st.hits += value
        elif self.match is not None and self.match(event):
            st.hits += 1
        if st.fired or st.buckets < self.warmup:
            return None
        current = self._value(st)
        if current is None or current < self.min_value:
            return None
        limit = st.mean + self.k * max(math.sqrt(st.var), self.min_deviation)
        if current <= limit:
            return None
        st.fired = True
        return (
            f"{current:.3g} in {_span(self.interval)} against a usual {st.mean:.3g} "
            f"(limit {limit:.3g})"
        )


@dataclass(slots=True)
class _AbsenceState:
    last: float = 0.0
    gap: float = 0.0
    events: int = 0
    reported: bool = False


class Absence(_AnyStart):
    """A group that stops: silent for longer than `factor` times its usual gap between events
    (an EWMA) and at least `min_silence`, once it sent `min_events`. Checked by `silent()`,
    which the engine calls from `advance(now)`; events only feed the history."""

    kind = "absence"

    def __init__(
        self, *, factor: float, min_silence: float, min_events: int, forget: float,
        alpha: float = 0.1,
    ) -> None:
        self.factor = factor
        self.min_silence = min_silence
        self.min_events = min_events
        self.alpha = alpha
        self.horizon = forget

    def new(self) -> _AbsenceState:
        return _AbsenceState()

    def add(self, state: _AbsenceState, ts: float, event: Event) -> str | None:
        if state.events and ts > state.last:
            gap = ts - state.last
            state.gap = gap if state.events == 1 else state.gap + self.alpha * (gap - state.gap)
        state.last = max(state.last, ts)
        state.events += 1
        state.reported = False
        return None

    def silent(self, state: _AbsenceState, now: float) -> str | None:
        """A reason if the group has gone silent at `now` (reported once per silence)."""
        if state.reported or state.events < self.min_events:
            return None
        limit = max(self.min_silence, self.factor * state.gap)
        quiet = now - state.last
        if quiet <= limit:
            return None
        state.reported = True
        return f"silent for {_span(round(quiet))}, usually every {_span(round(state.gap, 1))}"


class Each(_AnyStart):
    """Every matching event fires (sensitive changes, reported gaps)."""

    kind = "each"
    horizon = 0.0

    def new(self) -> None:
        return None

    def add(self, state: None, ts: float, event: Event) -> str | None:
        return str(event.get("event.action", "event"))


#: Every window type a rule may use.
Window = (
    LeakyBucket | Count | Distinct | Ratio | Sum | Ordered | FirstSeen | Baseline | Absence | Each
)
