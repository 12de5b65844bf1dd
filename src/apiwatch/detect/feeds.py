"""Rule plans and routes: the code that takes one event into every rule it may concern.

The engine runs, per event, the route of the event's class (its values of the routing fields,
see `engine.ROUTE_FIELDS`), so a route's cost is the engine's cost. Each rule contributes a
plan to a route: Python statements generated once per rule and class of events, where the tests
of the rule's filter that the class leaves open (`filters.residual`) become inline statements
when they are simple (presence, equality, membership, ranges on a plain field), the group key of
a single field is read inline, and the group bookkeeping follows. `fuse` compiles the plans of
the rules a route concerns into one function, each plan a block that the event leaves (`break`)
at the first test it fails, so that a typical event costs one call per event instead of one
per rule or per test. Other tests (regexes, networks, `a|b`, `any`/`all`/`not`) call their
compiled predicate.

The generated source holds only this module's fixed statements: every field name, value and
predicate taken from a rule is passed in the function's namespace (`N0`, `C1`, `P2`...), never
written into the source, so a rule file cannot inject code.
"""

from __future__ import annotations

import itertools
import re
import textwrap
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from apiwatch.detect.alert import SAMPLE_IDS, Alert
from apiwatch.detect.filters import Predicate, compile_filter, cost_of
from apiwatch.events import Event

#: A route: `route(event, event.get, ts, emit)` runs the event through every rule of its plans,
#: passing each new alert to `emit`.
Route = Callable[[Event, Callable[[str], Any], float, Callable[[Alert], None]], None]

#: A group key is absent (a field the rule groups by is missing).
MISSING: Any = object()

#: Numbers the names of values in generated code, unique across plans so that they can be fused.
_serial = itertools.count()
#: A read of a field whose name is bound to `N<serial>` (the only way plans read a named field).
_READ = re.compile(r"get\((N\d+)\)")


class Group:
    """One group's window state and the sample of its current episode."""

    __slots__ = ("first", "ids", "last", "n", "state")

    def __init__(self, state: Any, ts: float, event_id: Any) -> None:
        """The group of a first event at `ts` (counted), `event_id` its `event.id` (sampled
        if a string)."""
        self.state = state
        self.first = ts
        self.last = ts
        self.n = 1
        self.ids: list[str] = [event_id] if isinstance(event_id, str) else []


#: Names every plan may use.
_SHARED = {
    "MISSING": MISSING, "Group": Group, "SAMPLE_IDS": SAMPLE_IDS, "NUMBER": (int, float),
    "isinstance": isinstance, "list": list, "tuple": tuple, "len": len,
}

#: Single positive operators written inline; the value is known not to be None or a list.
_INLINE = {
    "equals": "v == {c}",
    "in": "v in {c}",
    "gte": "isinstance(v, NUMBER) and v >= {c}",
    "lte": "isinstance(v, NUMBER) and v <= {c}",
}


class Plan:
    """One rule's statements for one class of events (a block left with `break` when the event
    does not concern the rule) and the values they name."""

    __slots__ = ("lines", "namespace", "rule")

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {}

    def const(self, prefix: str, value: Any) -> str:
        """A unique name bound to `value` in the generated code."""
        name = f"{prefix}{next(_serial)}"
        self.namespace[name] = value
        return name

    def test(self, key: Any, cond: Any) -> None:
        """Statements leaving the block unless `key: cond` holds."""
        name = str(key)
        spec: Any
        if not isinstance(cond, Mapping):
            cond = {"in": cond} if isinstance(cond, list) else {"equals": cond}
        op, spec = "", None
        if len(cond) == 1:
            op, spec = next(iter(cond.items()))
        inline = "|" not in name and (op == "exists" or op in _INLINE)
        if inline and op == "in":
            spec = frozenset(spec)
        if inline and op in ("gte", "lte"):
            spec = float(spec)
        if not inline:
            pred = self.const("P", compile_filter({key: cond}))
            self.lines.append(f"if not {pred}(event): break")
        elif op == "exists":
            absent = "is None" if spec else "is not None"
            self.lines.append(f"if get({self.const('N', name)}) {absent}: break")
        else:
            field_pred = self.const("P", compile_filter({key: cond}))  # for a list value
            self.lines += [
                f"v = get({self.const('N', name)})",
                "if v is None: break",
                f"if isinstance(v, list):\n    if not {field_pred}(event): break",
                f"elif not ({_INLINE[op].format(c=self.const('C', spec))}): break",
            ]

    def conjunction(self, spec: Mapping[str, Any]) -> None:
        """Statements leaving the block unless the filter `spec` holds, cheapest tests first."""
        entries = sorted(spec.items(), key=lambda item: cost_of({item[0]: item[1]}))
        for key, value in entries:
            if key in ("any", "all", "not"):
                pred = self.const("P", compile_filter({key: value}))
                self.lines.append(f"if not {pred}(event): break")
            else:
                self.test(key, value)

    def tests(self, match: Any, ignore: Predicate | None) -> None:
        """Statements leaving the block unless `match` holds and `ignore` does not."""
        if match is False:
            self.lines.append("break")
        elif callable(match):
            self.lines.append(f"if not {self.const('P', match)}(event): break")
        elif match is not True:
            self.conjunction(match)
        if ignore is not None:
            self.lines.append(f"if {self.const('P', ignore)}(event): break")


def build_plan(
    *,
    rule: str,
    match: Any,
    opens: Predicate | bool,
    reset: Predicate | None,
    ignore: Predicate | None,
    key_names: tuple[str, bool] | None,
    key_of: Callable[[Event], Any],
    groups: OrderedDict[Any, Group],
    window: Any,
    max_keys: int,
    stats: Any,
    fire: Callable[..., Alert | None],
) -> Plan:
    """The plan of `rule` (its key). `match` is a residual filter (True: every event of the
    class matches; False: none) or a predicate; `opens` says which events may create a group
    (True: any, False: none, or a predicate); `reset` and `ignore` are predicates or None
    (never); `key_names` is (name, optional) when the rule groups by one plain field, else
    `key_of` reads the key. `stats` gets `matched` and `evicted_cap` counted; `fire(key, group,
    ts, reason, event=)` raises (or folds) an alert, which is passed to `emit`."""
    plan = Plan(rule)
    c = plan.const
    groups_, stats_, key_of_ = c("groups", groups), c("stats", stats), c("key_of", key_of)
    lines = plan.lines
    if reset is not None:
        lines.append(f"if {c('reset', reset)}(event):\n    key = {key_of_}(event)\n"
                     f"    if key is not MISSING: {groups_}.pop(key, None)\n    break")
    if opens is True:
        plan.tests(match, ignore)
    lookup = c("lookup", groups.get)
    if key_names is None:
        lines += [f"key = {key_of_}(event)", "if key is MISSING: break",
                  f"group = {lookup}(key)"]
    else:
        name, optional = key_names
        # A list value groups by its tuple: found when the lookup refuses it (rare and free
        # until then, where a type test would cost every event).
        lines += [f"key = get({c('N', name)})",
                  "if key is None:" + (" pass" if optional else " break"),
                  f"try:\n    group = {lookup}(key)\nexcept TypeError:\n"
                  f"    if not isinstance(key, list): raise\n"
                  f"    key = tuple(key)\n    group = {lookup}(key)"]
    if opens is not True:
        # Only an event that `opens` creates a group: test that before the filter, which may
        # cost more (every test is pure, so their order cannot change the answer).
        lines.append("if group is None: break" if opens is False
                     else f"if group is None and not {c('opens', opens)}(event): break")
        plan.tests(match, ignore)
    lines += [
        "if group is None:",
        f"    if len({groups_}) >= {c('max_keys', max_keys)}:",
        f"        {groups_}.popitem(last=False)",
        f"        {stats_}.evicted_cap += 1",
        f"    group = {groups_}[key] = Group({c('new', window.new)}(), ts, EVENT_ID)",
        "else:",
        f"    {c('touch', groups.move_to_end)}(key)",
        "    group.n += 1",
        "    if ts > group.last: group.last = ts",
        "    ids = group.ids",
        "    if len(ids) < SAMPLE_IDS and isinstance(EVENT_ID, str): ids.append(EVENT_ID)",
        f"{stats_}.matched += 1",
        f"reason = {c('add', window.add)}(group.state, ts, event)",
        "if reason is None: break",
        f"alert = {c('fire', fire)}(key, group, ts, reason, event=event)",
        "group.first, group.n, group.ids = ts, 0, []",
        "if alert is not None: emit(alert)",
    ]
    return plan


def fuse(plans: Sequence[Plan], name: str) -> Route:
    """One function running the event through each plan in order; a field that several
    plans read is read once, first. `name` shows in tracebacks and profiles."""
    namespace = dict(_SHARED)
    texts = ["\n".join(plan.lines) for plan in plans]
    for plan in plans:
        namespace.update(plan.namespace)
    reads: dict[str, list[str]] = {}  # field name -> the names of its reads in the plans
    for text in texts:
        for n in _READ.findall(text):
            reads.setdefault(namespace[n], []).append(n)
    local: dict[str, str] = {}  # field name -> the local variable holding its value
    # Every plan samples the event's id into a group it counts the event in.
    body: list[str] = ["EVENT_ID = get('event.id')"] if plans else []
    for field, names in reads.items():
        if len(names) > 1:
            local[field] = f"F{len(local)}"
            body.append(f"{local[field]} = get({names[0]})")
    for text in texts:
        shared = _READ.sub(lambda m: local.get(namespace[m.group(1)], m.group(0)), text)
        body += ["while True:", textwrap.indent(shared, "    "), "    break"]
    source = "def route(event, get, ts, emit):\n" + textwrap.indent("\n".join(body or ["pass"]),
                                                                   "    ")
    code = compile(source, f"<apiwatch {name}>", "exec")
    exec(code, namespace)  # noqa: S102 - fixed statements; rule values are in the namespace
    route: Route = namespace["route"]
    return route
