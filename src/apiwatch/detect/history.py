"""Windows that compare an event with its group's history: first seen, baseline, absence.

They share the protocol of `windows` (`new()`, `add(state, ts, event)`, `horizon`) but keep
their history after firing, since that history is what they compare against.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

from apiwatch.detect.filters import Predicate
from apiwatch.detect.windows import AnyStart, FieldRef, first_value, span
from apiwatch.events import Event


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


@dataclass(slots=True)
class _SeenState:
    values: OrderedDict[str, float] = field(default_factory=OrderedDict)
    events: int = 0
    since: float = 0.0
    latest: str | None = None  # the newest of `values` (a group usually repeats it)


class FirstSeen(AnyStart):
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
        self._one = ref[0] if len(ref) == 1 else None  # the usual single field, read directly

    def new(self) -> _SeenState:
        return _SeenState()

    def add(self, state: _SeenState, ts: float, event: Event) -> str | None:
        raw = event.get(self._one) if self._one is not None else first_value(event, self.ref)
        if raw is None:
            return None
        text = raw if type(raw) is str else str(raw)
        value = network_of(text) if self.network else text
        values = state.values
        if not state.events:
            state.since = ts
        state.events += 1
        last = values.get(value)
        if last is not None and ts - last <= self.forget:  # known, and not yet forgotten
            if value != state.latest:
                state.latest = value
                values.move_to_end(value)
            values[value] = ts
            return None
        if last is not None:  # seen longer than `forget` ago: new again
            del values[value]
        state.latest = value
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


class Baseline(AnyStart):
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
            f"{current:.3g} in {span(self.interval)} against a usual {st.mean:.3g} "
            f"(limit {limit:.3g})"
        )


@dataclass(slots=True)
class _AbsenceState:
    last: float = 0.0
    gap: float = 0.0
    events: int = 0
    reported: bool = False


class Absence(AnyStart):
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
        last = state.last
        if ts > last:
            if state.events:
                gap = ts - last
                state.gap = (gap if state.events == 1
                             else state.gap + self.alpha * (gap - state.gap))
            state.last = ts
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
        return f"silent for {span(round(quiet))}, usually every {span(round(state.gap, 1))}"
