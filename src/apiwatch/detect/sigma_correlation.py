"""Sigma correlation rules (Sigma correlation specification v2.1.0), evaluated streaming.

Types: `event_count`, `value_count`, `value_sum`, `value_avg`, `temporal`, `temporal_ordered`,
with `group-by`, `timespan`, and a condition of `gt`, `gte`, `lt`, `lte`, `eq`, `neq` (several
keys form a range, AND-ed, as the specification allows). A correlation may reference Sigma
rules and other correlations (a chain): a referenced correlation's match counts as an event of
the referencing one, at the time and with the fields of the event that completed it.

When it fires, on event time (each costs O(1) amortised per event and group):

- a condition with lower bounds only (`gt`, `gte`) on a count or a sum is tested on the
  sliding window of `timespan` that ends at each event, and fires as soon as it holds; the
  group then starts over;
- a condition with an upper bound (`lt`, `lte`, `eq`, `neq`, or a range), and any condition on
  `value_avg` (an average can fall again), cannot be decided before the window is over:
  windows are tumbling, opened by a group's first event, and judged
  when a later event of the group falls after the window, or when the engine's `advance(now)`
  passes its end (so `lt: 5` means "1 to 4 events in a window": a window opens on an event);
- `temporal` counts the referenced rules seen in the window (all of them by default);
  `temporal_ordered` needs them in the order listed (arrival order for equal times), each
  chain starting at most `timespan` before its last event.

`event_count`, `value_count` and `value_sum` with lower bounds and no chain run on the engine's
own `Count`, `Distinct` and `Sum` windows; the others on `CorrelationWindow` here. Events take
part in arrival order (the engine bounds lateness); `value_sum` / `value_avg` read numbers only.

Field name `aliases` (specification, "Field Name Aliases"): a group-by name that is an alias
is read, in each event, from the field the alias gives for the referenced rule the event
matched (the first one listed, if it matched several), so that a group joins events that
carry one value under different names. The engine then reads the group key through the
rule's `key_of` hook.

Refused with the rule and the feature named: `value_percentile` and `value_median` (no
streaming percentile per group here), extended (string) conditions, a condition on
`temporal_ordered`, `value_count` over several fields, a correlation that references one
judged on whole windows (whose match would not happen at an event), an alias that names no
field for one of the referenced rules, and aliases on a correlation that references
correlations.
"""

from __future__ import annotations

import math
import operator
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from apiwatch.detect.feeds import MISSING
from apiwatch.detect.filters import Predicate
from apiwatch.detect.history import Absence
from apiwatch.detect.rules import Window
from apiwatch.detect.sigma import Refused
from apiwatch.detect.windows import Count, Distinct, Sum
from apiwatch.events import Event

_OPS: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
    "eq": operator.eq, "neq": operator.ne,
}
#: Groups a referenced (inner) correlation keeps, least recently active evicted first.
INNER_MAX_KEYS = 100_000


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Condition:
    """A correlation condition: bounds AND-ed (`{gt: 100, lte: 200}`), maybe on a field."""

    bounds: tuple[tuple[str, float], ...]
    field: str | None = None

    @property
    def eager(self) -> bool:
        """Lower bounds only: decidable as soon as it holds, on a sliding window."""
        return all(op in ("gt", "gte") for op, _ in self.bounds)

    def holds(self, value: float) -> bool:
        """Whether a measure satisfies every bound."""
        return all(_OPS[op](value, bound) for op, bound in self.bounds)

    def least_count(self) -> int:
        """The least count satisfying a lower-bound-only condition."""
        return max(1, *(math.floor(b) + 1 if op == "gt" else math.ceil(b)
                        for op, b in self.bounds))

    def count_cap(self) -> int:
        """A count above which every count gives the same answer (for bounded sets)."""
        return math.floor(max(b for _, b in self.bounds)) + 2

    def __str__(self) -> str:
        return " and ".join(f"{op} {b:g}" for op, b in self.bounds)


def parse_condition(raw: Any, kind: str, rules: int) -> Condition:
    """The condition mapping of a correlation (the specification's default for `temporal`:
    every referenced rule)."""
    if raw is None:
        if kind in ("temporal", "temporal_ordered"):
            return Condition((("gte", float(rules)),))
        raise Refused(f"a {kind} correlation needs a condition")
    if isinstance(raw, str):
        raise Refused(f"extended (string) condition {raw!r}")
    if not isinstance(raw, Mapping):
        raise Refused(f"condition {raw!r} (expected a mapping)")
    if kind == "temporal_ordered":
        raise Refused("a condition on temporal_ordered (its events must all occur, in order)")
    field = raw.get("field")
    bounds = []
    for key, value in raw.items():
        if key == "field":
            continue
        if key not in _OPS:
            raise Refused(f"condition key {key!r} (expected {', '.join(_OPS)} or field)")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Refused(f"condition {key}: {value!r} (expected a number)")
        bounds.append((str(key), float(value)))
    if not bounds:
        raise Refused("a condition without gt, gte, lt, lte, eq or neq")
    needs_field = kind in ("value_count", "value_sum", "value_avg")
    if needs_field and not isinstance(field, str):
        what = "several fields" if isinstance(field, list) else "no field"
        raise Refused(f"a {kind} condition with {what} (one `field` is supported)")
    if not needs_field and field is not None:
        raise Refused(f"a condition field on a {kind} correlation")
    return Condition(tuple(bounds), field)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# --- measures: one per correlation type --------------------------------------------------


class _Measure:
    """What a correlation type measures over the events of a window.

    Sliding (`new`, `slide`): the state holds the window's events (or what of them matters),
    trimmed to `timespan` before `ts`; `slide` returns the measure. Tumbling (`acc`, `gather`,
    `value`): plain accumulators for the whole window."""

    def __init__(self, seconds: float, cond: Condition, refs: int) -> None:
        self.seconds = seconds
        self.cond = cond
        self.refs = refs

    def new(self) -> Any:
        raise NotImplementedError

    def slide(self, st: Any, ts: float, event: Event, hits: Sequence[bool]) -> float:
        raise NotImplementedError

    def acc(self) -> Any:
        raise NotImplementedError

    def gather(self, st: Any, event: Event, hits: Sequence[bool]) -> None:
        raise NotImplementedError

    def value(self, st: Any) -> float:
        raise NotImplementedError


class _EventCount(_Measure):
    def new(self) -> Any:
        return deque(maxlen=self.cond.least_count())  # the last `least` times are enough

    def slide(self, st: Any, ts: float, event: Event, hits: Sequence[bool]) -> float:
        st.append(ts)
        while st[0] < ts - self.seconds:
            st.popleft()
        return float(len(st))

    def acc(self) -> Any:
        return [0]

    def gather(self, st: Any, event: Event, hits: Sequence[bool]) -> None:
        st[0] += 1

    def value(self, st: Any) -> float:
        return float(st[0])


class _ValueCount(_Measure):
    def _key(self, event: Event) -> str | None:
        value = event.get(self.cond.field or "")
        return None if value is None else str(value)

    def new(self) -> Any:
        return OrderedDict()  # value -> last time, oldest first

    def slide(self, st: Any, ts: float, event: Event, hits: Sequence[bool]) -> float:
        key = self._key(event)
        if key is not None:
            st.pop(key, None)
            st[key] = ts
            if len(st) > self.cond.least_count():  # the most recent values are enough
                st.popitem(last=False)
        while st and next(iter(st.values())) < ts - self.seconds:
            st.popitem(last=False)
        return float(len(st))

    def acc(self) -> Any:
        return set()

    def gather(self, st: Any, event: Event, hits: Sequence[bool]) -> None:
        key = self._key(event)
        if key is not None and len(st) < self.cond.count_cap():
            st.add(key)

    def value(self, st: Any) -> float:
        return float(len(st))


class _ValueSum(_Measure):
    average = False

    def new(self) -> Any:
        return [0.0, 0, deque()]  # total, count, (time, value) pairs oldest first

    def slide(self, st: Any, ts: float, event: Event, hits: Sequence[bool]) -> float:
        pairs: deque[tuple[float, float]] = st[2]
        value = _number(event.get(self.cond.field or ""))
        if value is not None:
            pairs.append((ts, value))
            st[0] += value
            st[1] += 1
        while pairs and pairs[0][0] < ts - self.seconds:
            st[0] -= pairs.popleft()[1]
            st[1] -= 1
        if not pairs:
            st[0] = 0.0  # no rounding drift carried over an empty window
        return self.value(st)

    def acc(self) -> Any:
        return [0.0, 0]

    def gather(self, st: Any, event: Event, hits: Sequence[bool]) -> None:
        value = _number(event.get(self.cond.field or ""))
        if value is not None:
            st[0] += value
            st[1] += 1

    def value(self, st: Any) -> float:
        if self.average:
            return float(st[0] / st[1]) if st[1] else math.nan  # NaN satisfies no bound
        return float(st[0])


class _ValueAvg(_ValueSum):
    average = True


class _Temporal(_Measure):
    def new(self) -> Any:
        return [-math.inf] * self.refs  # the last time each referenced rule matched

    def slide(self, st: Any, ts: float, event: Event, hits: Sequence[bool]) -> float:
        for i, hit in enumerate(hits):
            if hit and ts > st[i]:
                st[i] = ts
        return float(sum(1 for t in st if t >= ts - self.seconds))

    def acc(self) -> Any:
        return set()  # the referenced rules seen

    def gather(self, st: Any, event: Event, hits: Sequence[bool]) -> None:
        st.update(i for i, hit in enumerate(hits) if hit)

    def value(self, st: Any) -> float:
        return float(len(st))


class _TemporalOrdered(_Measure):
    """Its condition is always "all, in order" (eager), so it is never tumbling."""

    def new(self) -> Any:
        # starts[i]: the latest start of a chain of rules 0..i in order (None: no chain).
        return [None] * self.refs

    def slide(self, st: Any, ts: float, event: Event, hits: Sequence[bool]) -> float:
        cutoff = ts - self.seconds
        # From the last step down, so that one event does not serve two consecutive steps.
        for i in range(self.refs - 1, -1, -1):
            if not hits[i]:
                continue
            if i == 0:
                st[0] = ts
            elif st[i - 1] is not None:  # a stale start is never kept over a fresher one
                st[i] = st[i - 1] if st[i] is None else max(st[i], st[i - 1])
        last = st[-1]
        return float(self.refs) if last is not None and last >= cutoff else 0.0


_MEASURES: dict[str, type[_Measure]] = {
    "event_count": _EventCount, "value_count": _ValueCount, "value_sum": _ValueSum,
    "value_avg": _ValueAvg, "temporal": _Temporal, "temporal_ordered": _TemporalOrdered,
}


class _Tumbling:
    """A tumbling window's state: its start (None: no open window), the accumulators, and
    the events of the open window and of the last one judged."""

    __slots__ = ("acc", "count", "events", "last", "start")

    def __init__(self) -> None:
        self.start: float | None = None
        self.last = 0.0  # the engine's `advance` reads it as the alert's first time...
        self.count = 0  # ...and this as its count
        self.events = 0
        self.acc: Any = None


#: A referenced rule: a Sigma rule's predicate, or a correlation.
Reference = Predicate | Any


def _ignore_time(predicate: Predicate) -> Callable[[Event, float], bool]:
    return lambda event, ts: predicate(event)


class Correlation:
    """One correlation rule's evaluator: which referenced rules an event matches, and the
    measure of its group's window against the condition."""

    def __init__(
        self, *, title: str, kind: str, refs: Sequence[Reference], group_by: Sequence[str],
        seconds: float, cond: Condition, aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.title = title
        self.kind = kind
        self.refs = tuple(refs)
        self.group_by = tuple(group_by)
        aliases = aliases or {}
        #: Per group-by name, the field to read for each referenced rule (an alias's fields).
        self.aliased = tuple(tuple(aliases.get(name, [name] * len(self.refs)))
                             for name in self.group_by)
        self.has_aliases = any(name in aliases for name in self.group_by)
        self.seconds = seconds
        self.cond = cond
        self.measure = _MEASURES[kind](seconds, cond, len(self.refs))
        # An average is not monotone in the events of a window: only a whole window decides.
        self.sliding = cond.eager and kind != "value_avg"
        self._tests = tuple(r.update if isinstance(r, Correlation) else _ignore_time(r)
                            for r in self.refs)
        self._groups: OrderedDict[Any, Any] = OrderedDict()  # when referenced by another
        self._last: tuple[Event | None, bool] = (None, False)
        self._hits: tuple[Event | None, list[bool]] = (None, [])
        self.evicted = 0

    def _reason(self, value: float) -> str:
        return (f"{self.kind} {value:g} within {_span(self.seconds)} ({self.cond}), "
                f"Sigma correlation {self.title!r}")

    def new(self) -> Any:
        """A group's state: the sliding measure's, or a tumbling window."""
        return self.measure.new() if self.sliding else _Tumbling()

    def hits(self, event: Event, ts: float) -> list[bool]:
        """Which referenced rules the event matches (feeding referenced correlations); once
        per event, as the engine's key hook may ask first."""
        last_event, last_hits = self._hits
        if event is last_event:
            return last_hits
        hits = [test(event, ts) for test in self._tests]
        self._hits = (event, hits)
        return hits

    def key(self, event: Event, hits: Sequence[bool]) -> Any:
        """The group key of an event matching `hits`, or None if a group-by field (or the
        field an alias gives for the rule it matched) is absent."""
        if self.has_aliases:
            ref = next((i for i, hit in enumerate(hits) if hit), 0)
            names: Sequence[str] = [fields[ref] for fields in self.aliased]
        else:
            names = self.group_by
        values = []
        for name in names:
            value = event.get(name)
            if value is None:
                return None
            values.append(tuple(value) if isinstance(value, list) else value)
        return tuple(values)

    def engine_key(self, event: Event) -> Any:
        """The key as the engine's `Rule.key_of` reads it (aliases need the matched rule):
        MISSING if absent; a value for one group-by name, else a tuple. Referenced rules
        here are Sigma rules, whose predicates ignore time."""
        key = self.key(event, self.hits(event, 0.0))
        if key is None:
            return MISSING
        return key[0] if len(key) == 1 else key

    def step(self, state: Any, ts: float, event: Event, hits: Sequence[bool]) -> str | None:
        """Feed a matching event to a group's state; a reason when the correlation fires."""
        measure = self.measure
        if self.sliding:
            value = measure.slide(state, ts, event, hits)
            if not self.cond.holds(value):
                return None
            fresh = measure.new()
            if isinstance(state, list):
                state[:] = fresh
            else:
                state.clear()
            return self._reason(value)
        verdict = None
        if state.start is not None and ts >= state.start + self.seconds:
            verdict = self.close(state, ts)
        if state.start is None:
            state.start, state.last, state.acc = ts, ts, measure.acc()
        measure.gather(state.acc, event, hits)
        state.events += 1
        return verdict

    def close(self, state: Any, now: float) -> str | None:
        """Judge a tumbling window that has ended by `now` (None: open, or not firing)."""
        if not isinstance(state, _Tumbling) or state.start is None:
            return None
        if now < state.start + self.seconds:
            return None
        value = self.measure.value(state.acc)
        state.start, state.acc, state.count, state.events = None, None, state.events, 0
        return self._reason(value) if self.cond.holds(value) else None

    def update(self, event: Event, ts: float) -> bool:
        """As a correlation referenced by another: whether it fires at this event (once per
        event, however many correlations reference it)."""
        last_event, last_hit = self._last
        if event is last_event:
            return last_hit
        hit = False
        hits = self.hits(event, ts)
        key = self.key(event, hits) if any(hits) else None
        if key is not None:
            groups = self._groups
            state = groups.get(key)
            if state is None:
                if len(groups) >= INNER_MAX_KEYS:
                    groups.popitem(last=False)
                    self.evicted += 1
                state = groups[key] = [ts, self.new()]
            else:
                groups.move_to_end(key)
                state[0] = ts
            hit = self.step(state[1], ts, event, hits) is not None
            while groups and next(iter(groups.values()))[0] < ts - 2 * self.seconds:
                groups.popitem(last=False)  # idle groups, oldest activity first
        self._last = (event, hit)
        return hit


class CorrelationWindow(Absence):
    """A correlation as an engine window. It is an `Absence` so that the engine's
    `advance(now)` calls `silent`, which judges tumbling windows that have ended."""

    kind = "sigma_correlation"

    def __init__(self, correlation: Correlation, *, strict_keys: bool) -> None:
        # Absence's own settings are not used: `add` and `silent` are replaced.
        self.correlation = correlation
        self.horizon = correlation.seconds
        self.strict_keys = strict_keys

    def new(self) -> Any:
        return self.correlation.new()

    def add(self, state: Any, ts: float, event: Event) -> str | None:
        corr = self.correlation
        hits = corr.hits(event, ts)
        if not any(hits):
            return None
        if self.strict_keys and corr.key(event, hits) is None:
            # The engine's key allows absent fields (so that referenced correlations see
            # every event); this correlation does not count such events.
            return None
        return corr.step(state, ts, event, hits)

    def silent(self, state: Any, now: float) -> str | None:
        return self.correlation.close(state, now)


def engine_window(kind: str, cond: Condition, seconds: float) -> Window | None:
    """The engine's own window for a lower-bound correlation it expresses exactly, else
    None."""
    if not cond.eager:
        return None
    if kind == "event_count":
        return Count(cond.least_count(), seconds)
    if kind == "value_count" and cond.field is not None:
        return Distinct([((cond.field,), cond.least_count())], seconds)
    if kind == "value_sum" and cond.field is not None:
        # `gt x` is `>= the next float above x`: Sum fires at total >= threshold.
        threshold = max(math.nextafter(b, math.inf) if op == "gt" else b
                        for op, b in cond.bounds)
        return Sum((cond.field,), threshold, seconds)
    return None
