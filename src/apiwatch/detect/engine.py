"""The streaming engine: every event through every rule that can match it, on event time.

Per event: its time is read once, and its values of `ROUTE_FIELDS` (its action, outcome, status
and method) pick its route, one compiled function that runs the event through the rules that
can match such events, each with the tests that these values leave open (`feeds`); each rule
finds its group's state by the values of the fields it groups by. Bounds:

- lateness: the engine keeps a watermark, the newest event time seen minus `lateness`; an
  event older than that is counted in `stats.late` (and per rule nothing changes), never
  silently folded into windows that have moved on;
- memory: each rule keeps at most `max_keys` groups; the least recently active group is evicted
  when the cap is reached, and groups idle for longer than their window's horizon are evicted
  as time moves on; both are counted per rule;
- alerts: one per rule and group per suppression window (event time); repeats within it are
  folded into the open alert (`suppressed`, `count`, `last_seen`).

`advance(now)` runs the time-driven rules (silent sources) and should be called periodically
with the current time (or, replaying, the newest event time).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from apiwatch.detect.alert import Alert
from apiwatch.detect.feeds import MISSING, Group, Plan, Route, build_plan, fuse
from apiwatch.detect.filters import Predicate, compile_filter, filter_fields, residual
from apiwatch.detect.history import Absence
from apiwatch.detect.rules import GroupField, Rule
from apiwatch.events import Event, parse_timestamp


@dataclass
class RuleStats:
    """Counters of one rule."""

    matched: int = 0
    alerts: int = 0
    suppressed: int = 0
    evicted_cap: int = 0  # groups dropped because the rule held `max_keys` groups
    evicted_idle: int = 0  # groups dropped after being idle longer than the window's horizon
    groups: int = 0


@dataclass
class EngineStats:
    """Counters of the engine; `late` events were older than the allowed lateness."""

    events: int = 0
    late: int = 0
    untimed: int = 0  # events without a readable `@timestamp`
    alerts: int = 0
    routes: int = 0  # route functions compiled (classes of events the rules treat alike)
    rules: dict[str, RuleStats] = field(default_factory=dict)


#: Low-cardinality fields whose values route an event: per combination of their values the
#: engine keeps a route, the plans of the rules that can match, each with the tests that the
#: combination decides taken out (`filters.residual`), fused into one function.
#: `Engine.process_batch` reads them in this order.
ROUTE_FIELDS = ("event.action", "event.outcome", "http.response.status_code",
                "http.request.method")
#: Routes (and per-rule specializations) kept; a stream of odd values cannot grow memory.
_MAX_ROUTES = 4096
#: Events between two sweeps of idle groups and expired alerts.
_SWEEP_EVERY = 4096
_EPOCH = datetime(1970, 1, 1)


class _Raise(Protocol):
    def __call__(self, runner: _Runner, key: Any, group: Group, ts: float, reason: str,
                 *, event: Event | None) -> Alert | None: ...


def _key_reader(fields: tuple[GroupField, ...]) -> Callable[[Event], Any]:
    """Reads a group key: a value, a tuple of values, or MISSING if a required field is
    absent (list values become tuples, to be hashable)."""
    if len(fields) == 1 and len(fields[0].names) == 1:
        name, optional = fields[0].names[0], fields[0].optional

        def single(event: Event) -> Any:
            value = event.get(name)
            if value is None:
                return None if optional else MISSING
            return tuple(value) if isinstance(value, list) else value

        return single

    def several(event: Event) -> Any:
        parts = []
        for gf in fields:
            value = None
            for name in gf.names:
                value = event.get(name)
                if value is not None:
                    break
            if value is None and not gf.optional:
                return MISSING
            parts.append(tuple(value) if isinstance(value, list) else value)
        return parts[0] if len(parts) == 1 else tuple(parts)

    return several


def _predicate(decided: Any) -> Predicate | None:
    """A residual reset or allowlist filter as a plan takes it (None: never holds)."""
    if decided is False:
        return None
    return compile_filter(None if decided is True else decided)


class _Runner:
    """One rule's groups and its plans (one per class of events) that update them."""

    __slots__ = (
        "fields", "generic", "groups", "horizon", "key", "max_keys", "plans", "raise_",
        "route_index", "rule", "same", "stats", "window",
    )

    def __init__(self, rule: Rule, max_keys: int, stats: RuleStats, raise_: _Raise) -> None:
        self.rule = rule
        self.window = rule.window
        self.groups: OrderedDict[Any, Group] = OrderedDict()
        self.max_keys = max_keys
        self.stats = stats
        self.raise_ = raise_
        # Groups are kept a little past the window so lateness cannot split an episode.
        self.horizon = max(rule.window.horizon, rule.suppress) * 1.5 + 60
        self.fields = rule.group_by
        self.key = rule.key_of or _key_reader(rule.group_by)
        # The route fields the rule's filters and the window's `opens` test (a sequence that
        # only a failure opens is decided by the outcome).
        specs = (*(rule.specs or ()), rule.window.opens_spec)
        used = frozenset().union(*map(filter_fields, specs)) if rule.specs else frozenset()
        self.route_index = tuple(i for i, f in enumerate(ROUTE_FIELDS) if f in used)
        self.plans: dict[tuple[Any, ...], Plan | None] = {}
        # Plans by what the filters leave open: values that leave the same tests share a plan
        # (and so routes share their fused function).
        self.same: dict[str, Plan | None] = {}
        opens = rule.window.opens
        self.generic = self._plan(rule.match, True if opens is None else opens, rule.reset_on,
                                  rule.ignore)

    def plan_for(self, route: tuple[Any, ...]) -> Plan | None:
        """The plan for events with these ROUTE_FIELDS values; None if none can concern the
        rule."""
        if self.rule.specs is None:
            return self.generic
        values = tuple(route[i] for i in self.route_index)
        if values in self.plans:
            return self.plans[values]
        known = {ROUTE_FIELDS[i]: v for i, v in zip(self.route_index, values, strict=True)}
        filter_spec, reset_spec, allow_spec = self.rule.specs
        match = residual(filter_spec, known)
        reset = False if reset_spec is None else residual(reset_spec, known)
        ignore = False if allow_spec is None else residual(allow_spec, known)
        opens_spec = self.window.opens_spec
        decided = None if opens_spec is None else residual(opens_spec, known)
        signature = repr((match, reset, ignore, decided))
        if signature in self.same:
            plan = self.same[signature]
        elif reset is False and (match is False or ignore is True):
            plan = None
        else:
            opens: Predicate | bool = True if self.window.opens is None else self.window.opens
            if decided is not None:
                opens = decided if isinstance(decided, bool) else compile_filter(decided)
            plan = self._plan(match, opens, _predicate(reset), _predicate(ignore))
        if len(self.plans) >= _MAX_ROUTES:
            self.plans.clear()
            self.same.clear()
        self.plans[values] = self.same[signature] = plan
        return plan

    def _plan(self, match: Any, opens: Predicate | bool, reset: Predicate | None,
              ignore: Predicate | None) -> Plan:
        gb = self.fields
        single = self.rule.key_of is None and len(gb) == 1 and len(gb[0].names) == 1
        return build_plan(
            rule=self.rule.key, match=match, opens=opens, reset=reset, ignore=ignore,
            key_names=(gb[0].names[0], gb[0].optional) if single else None, key_of=self.key,
            groups=self.groups, window=self.window, max_keys=self.max_keys, stats=self.stats,
            fire=partial(self.raise_, self),
        )

    def group_dict(self, key: Any, event: Event | None) -> dict[str, Any]:
        """The alert's `group`: each grouped field's name (the one present) and value."""
        values = (key,) if len(self.fields) == 1 else key
        out: dict[str, Any] = {}
        for gf, value in zip(self.fields, values, strict=True):
            name = gf.names[0]
            if event is not None:
                name = next((n for n in gf.names if event.get(n) is not None), name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def evict_idle(self, now: float) -> None:
        groups = self.groups
        cutoff = now - self.horizon
        while groups:
            first = next(iter(groups.values()))
            if first.last >= cutoff:
                break
            groups.popitem(last=False)
            self.stats.evicted_idle += 1


class Engine:
    """Evaluates rules over a stream of events; see the module docstring for the bounds."""

    def __init__(
        self, rules: Iterable[Rule], *, lateness: float = 60.0, max_keys: int = 100_000
    ) -> None:
        self.lateness = lateness
        self.stats = EngineStats()
        self._runners: list[_Runner] = []
        for rule in rules:
            stats = self.stats.rules.setdefault(rule.key, RuleStats())
            self._runners.append(_Runner(rule, max_keys, stats, self._raise))
        self._routes: dict[tuple[Any, ...], Route] = {}
        # Routes by their plans: classes of events that concern the same rules the same way.
        self._fused: dict[tuple[Plan, ...], Route] = {}
        #: Ids of rules switched off (`set_disabled`): no event or tick reaches them.
        self.disabled: frozenset[str] = frozenset()
        self._live = bool(self._runners)  # any rule on
        # For events whose route values cannot be a dict key (a list, a mapping); compiled
        # when first needed, as such events are rare.
        self._unrouted: Route | None = None
        self._open: dict[tuple[str, Any], Alert] = {}
        self._max_ts = float("-inf")
        self._seconds: dict[str, float] = {}
        self._since_sweep = 0

    @property
    def rules(self) -> list[Rule]:
        """The rules evaluated, in load order."""
        return [r.rule for r in self._runners]

    def _time(self, stamp: Any) -> float | None:
        """Event time in seconds; the common `YYYY-MM-DDTHH:MM:SS.ffffffZ` form is cached by
        the second, as events come in bursts."""
        if not isinstance(stamp, str):
            return None
        head = stamp[:19]
        # Only a UTC (`Z`) stamp may use the cache: `+01:00` with the same head is another time.
        base = self._seconds.get(head) if stamp[-1:] == "Z" else None
        if base is None:
            try:
                if (len(stamp) >= 20 and stamp[19] in ".Z" and stamp[-1] == "Z"
                        and stamp[4] == stamp[7] == "-" and stamp[10] == "T"):
                    base = (datetime.fromisoformat(head) - _EPOCH).total_seconds()
                else:
                    return parse_timestamp(stamp).timestamp()
            except ValueError:
                return None
            if len(self._seconds) > 4096:
                self._seconds.clear()
            self._seconds[head] = base
        if len(stamp) > 21 and stamp[19] == ".":
            try:
                return base + float(stamp[19:-1])
            except ValueError:
                return None
        return base

    def process(self, event: Event) -> list[Alert]:
        """Feed one event; the new alerts it raised (repeats are folded, not returned)."""
        return self.process_batch((event,))

    def process_batch(self, events: Sequence[Event]) -> list[Alert]:
        """Feed events in order; the new alerts they raised, in order (as `process` on each)."""
        stats, routes, seconds = self.stats, self._routes, self._seconds
        if not self._live:  # no rule on (catalogue off, say): nothing to route or time
            stats.events += len(events)
            return []
        lateness, max_ts = self.lateness, self._max_ts
        out: list[Alert] = []
        emit = out.append
        # Counted in locals, written back per batch (and before a sweep, which reads them).
        seen, since_sweep = 0, self._since_sweep
        try:
            for event in events:
                seen += 1
                get = event.get
                stamp: Any = get("@timestamp")
                # `_time`'s usual case without the call: a cached second, then the fraction;
                # anything else (not a string, a new second, no fraction...) raises to `_time`.
                try:
                    if stamp[19] == "." and stamp[-1] == "Z":
                        ts: float | None = seconds[stamp[:19]] + float(stamp[19:-1])
                    else:
                        ts = self._time(stamp)
                except (LookupError, TypeError, ValueError):
                    ts = self._time(stamp)
                if ts is None:
                    stats.untimed += 1
                    continue
                if ts > max_ts:
                    max_ts = ts
                elif ts < max_ts - lateness:
                    stats.late += 1
                    continue
                route = (get("event.action"), get("event.outcome"),  # ROUTE_FIELDS
                         get("http.response.status_code"), get("http.request.method"))
                try:
                    run = routes[route]
                except KeyError:
                    run = self._route(route)
                except TypeError:  # an unhashable value: every rule, unspecialized
                    run = self._unrouted or self._route_unhashable()
                run(event, get, ts, emit)
                since_sweep += 1
                if since_sweep >= _SWEEP_EVERY:
                    self._max_ts = max_ts
                    self._sweep(max_ts)
                    since_sweep = 0
        finally:
            self._max_ts = max_ts
            stats.events += seen
            self._since_sweep = since_sweep
        return out

    def set_disabled(self, rule_ids: Iterable[str]) -> None:
        """Switch off the rules with these ids (with their tenant overrides) and on all
        others. A rule switched off forgets its groups: on again, its windows start empty."""
        self.disabled = frozenset(rule_ids)
        self._live = bool(self._active())
        for runner in self._runners:
            if runner.rule.id in self.disabled:
                runner.groups.clear()
        self._routes.clear()
        self._unrouted = None

    def _active(self) -> list[_Runner]:
        return [r for r in self._runners if r.rule.id not in self.disabled]

    def _route(self, route: tuple[Any, ...]) -> Route:
        run = self._fuse(tuple(p for r in self._active() if (p := r.plan_for(route)) is not None))
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        self._routes[route] = run
        return run

    def _route_unhashable(self) -> Route:
        self._unrouted = self._fuse(tuple(r.generic for r in self._active()))
        return self._unrouted

    def _fuse(self, plans: tuple[Plan, ...]) -> Route:
        run = self._fused.get(plans)
        if run is None:
            if len(self._fused) >= _MAX_ROUTES:
                self._fused.clear()
            name = "route of " + (", ".join(p.rule for p in plans) or "no rule")
            run = self._fused[plans] = fuse(plans, name)
            self.stats.routes += 1
        return run

    def _raise(
        self, runner: _Runner, key: Any, group: Group, ts: float, reason: str,
        *, event: Event | None,
    ) -> Alert | None:
        rule = runner.rule
        slot = (rule.key, key)
        open_alert = self._open.get(slot)
        if open_alert is not None and ts < open_alert.first_seen + rule.suppress:
            open_alert.fold(group.n, ts, group.ids)
            runner.stats.suppressed += 1
            return None
        alert = Alert(
            rule=rule.id, title=rule.title, severity=rule.severity,
            group=runner.group_dict(key, event), first_seen=min(group.first, ts),
            last_seen=ts, count=group.n, reason=reason, event_ids=list(group.ids),
            tenant=rule.tenant,
        )
        self._open[slot] = alert
        runner.stats.alerts += 1
        self.stats.alerts += 1
        return alert

    def _sweep(self, now: float) -> None:
        """Evict idle groups and forget alerts whose suppression window has passed."""
        self._since_sweep = 0
        for runner in self._runners:
            runner.evict_idle(now)
            runner.stats.groups = len(runner.groups)
        suppress = {r.rule.key: r.rule.suppress for r in self._runners}
        for slot in [s for s, a in self._open.items() if now >= a.first_seen + suppress[s[0]]]:
            del self._open[slot]

    def advance(self, now: float) -> list[Alert]:
        """Run time-driven rules at `now` (seconds since the epoch): silent sources."""
        out: list[Alert] = []
        for runner in self._active():
            window = runner.window
            if not isinstance(window, Absence):
                continue
            for key, group in list(runner.groups.items()):
                reason = window.silent(group.state, now)
                if reason is None:
                    continue
                # A judged window's events (`count`, Sigma); a silence has none.
                group.n = getattr(group.state, "count", 0)
                group.first = group.state.last
                alert = self._raise(runner, key, group, now, reason, event=None)
                group.first, group.n, group.ids = now, 0, []
                if alert is not None:
                    out.append(alert)
        self._sweep(max(self._max_ts, now) if self._max_ts > float("-inf") else now)
        return out

    def open_alerts(self) -> list[Alert]:
        """Alerts still inside their suppression window (repeats fold into these)."""
        return list(self._open.values())
