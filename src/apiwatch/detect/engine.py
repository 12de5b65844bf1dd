"""The streaming engine: every event through every rule that can match it, on event time.

Per event: its time is read once, rules are looked up by `event.action` (an event only visits
rules whose filter can match its action), and each rule finds its group's state by the values
of the fields it groups by. Bounds:

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

import calendar
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from apiwatch.detect.alert import SAMPLE_IDS, Alert
from apiwatch.detect.rules import Rule
from apiwatch.detect.windows import Absence
from apiwatch.events import Event, parse_timestamp

_MISSING = object()


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
    rules: dict[str, RuleStats] = field(default_factory=dict)


class _Group:
    __slots__ = ("first", "ids", "last", "n", "state")

    def __init__(self, state: Any, ts: float) -> None:
        self.state = state
        self.first = ts
        self.last = ts
        self.n = 0
        self.ids: list[str] = []


class _Runner:
    """One rule's groups and the logic that feeds them."""

    __slots__ = (
        "add",
        "fields",
        "groups",
        "horizon",
        "ignore",
        "match",
        "max_keys",
        "names",
        "reset_on",
        "rule",
        "single",
        "stats",
        "window",
    )

    def __init__(self, rule: Rule, max_keys: int, stats: RuleStats) -> None:
        self.rule = rule
        self.match = rule.match
        self.ignore = rule.ignore
        self.reset_on = rule.reset_on
        self.window = rule.window
        self.add = rule.window.add
        self.groups: OrderedDict[Any, _Group] = OrderedDict()
        self.max_keys = max_keys
        self.stats = stats
        # Groups are kept a little past the window so lateness cannot split an episode.
        self.horizon = max(rule.window.horizon, rule.suppress) * 1.5 + 60
        self.fields = rule.group_by
        gb = rule.group_by
        self.single = gb[0].names[0] if len(gb) == 1 and len(gb[0].names) == 1 else None
        self.names = tuple(g.names for g in gb)

    def key(self, event: Event) -> Any:
        """The group key of `event` (a value or a tuple), or _MISSING if a field is absent."""
        if self.single is not None:
            value = event.get(self.single)
            if value is None and not self.fields[0].optional:
                return _MISSING
            return tuple(value) if isinstance(value, list) else value
        parts = []
        for gf in self.fields:
            value = None
            for name in gf.names:
                value = event.get(name)
                if value is not None:
                    break
            if value is None and not gf.optional:
                return _MISSING
            parts.append(tuple(value) if isinstance(value, list) else value)
        return parts[0] if len(parts) == 1 else tuple(parts)

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
        self._by_action: dict[str, list[_Runner]] = {}
        self._any: list[_Runner] = []
        for rule in rules:
            stats = self.stats.rules.setdefault(rule.key, RuleStats())
            runner = _Runner(rule, max_keys, stats)
            self._runners.append(runner)
            actions = rule.actions
            if actions is not None and rule.reset_on is not None:
                actions = None if rule.reset_actions is None else actions | rule.reset_actions
            if actions is None:
                self._any.append(runner)
            else:
                for action in actions:
                    self._by_action.setdefault(action, []).append(runner)
        self._route: dict[Any, tuple[_Runner, ...]] = {}
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
        base = self._seconds.get(head)
        if base is None:
            try:
                if len(stamp) >= 20 and stamp[19] in ".Z" and stamp[-1] == "Z":
                    base = float(calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")))
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
        stats = self.stats
        stats.events += 1
        ts = self._time(event.get("@timestamp"))
        if ts is None:
            stats.untimed += 1
            return []
        if ts > self._max_ts:
            self._max_ts = ts
        elif ts < self._max_ts - self.lateness:
            stats.late += 1
            return []
        action = event.get("event.action")
        runners = self._route.get(action)
        if runners is None:
            indexed = self._by_action.get(action, []) if isinstance(action, str) else []
            runners = tuple(r for r in self._runners if r in indexed or r in self._any)
            self._route[action] = runners
        out: list[Alert] = []
        for runner in runners:
            alert = self._feed(runner, event, ts)
            if alert is not None:
                out.append(alert)
        self._since_sweep += 1
        if self._since_sweep >= 4096:
            self._sweep(self._max_ts)
        return out

    def _feed(self, runner: _Runner, event: Event, ts: float) -> Alert | None:
        if runner.reset_on is not None and runner.reset_on(event):
            key = runner.key(event)
            if key is not _MISSING:
                runner.groups.pop(key, None)
            return None
        if not runner.match(event) or (runner.ignore is not None and runner.ignore(event)):
            return None
        key = runner.key(event)
        if key is _MISSING:
            return None
        groups = runner.groups
        group = groups.get(key)
        if group is None:
            opens = runner.window.opens
            if opens is not None and not opens(event):
                return None
            if len(groups) >= runner.max_keys:
                groups.popitem(last=False)
                runner.stats.evicted_cap += 1
            group = groups[key] = _Group(runner.window.new(), ts)
        else:
            groups.move_to_end(key)
        runner.stats.matched += 1
        group.n += 1
        group.last = max(group.last, ts)
        if len(group.ids) < SAMPLE_IDS:
            event_id = event.get("event.id")
            if isinstance(event_id, str):
                group.ids.append(event_id)
        reason = runner.add(group.state, ts, event)
        if reason is None:
            return None
        alert = self._raise(runner, key, group, ts, reason, event=event)
        group.first, group.n, group.ids = ts, 0, []
        return alert

    def _raise(
        self, runner: _Runner, key: Any, group: _Group, ts: float, reason: str,
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
        for runner in self._runners:
            window = runner.window
            if not isinstance(window, Absence):
                continue
            for key, group in list(runner.groups.items()):
                reason = window.silent(group.state, now)
                if reason is None:
                    continue
                group.n, group.first = 0, group.state.last
                alert = self._raise(runner, key, group, now, reason, event=None)
                if alert is not None:
                    out.append(alert)
        self._sweep(max(self._max_ts, now) if self._max_ts > float("-inf") else now)
        return out

    def open_alerts(self) -> list[Alert]:
        """Alerts still inside their suppression window (repeats fold into these)."""
        return list(self._open.values())
