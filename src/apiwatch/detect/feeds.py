"""A rule's feed: the function that takes one event into the rule, compiled per route.

The engine calls a feed for every event that may concern the rule, so its cost is the engine's
cost. A feed is generated as Python source and compiled once per rule and route (a combination
of values of the routing fields, see `engine.ROUTE_FIELDS`): the tests of the rule's filter
that the route leaves open (`filters.residual`) become inline statements when they are simple
(presence, equality, membership, ranges on a plain field), the group key of a single field is
read inline, and the group bookkeeping follows, so that a typical event costs one call per
rule instead of one per test. Other tests (regexes, networks, `a|b`, `any`/`all`/`not`) call
their compiled predicate.

The generated source holds only this module's fixed statements: every field name, value and
predicate taken from a rule is passed in the function's namespace (`N0`, `C0`, `P0`...), never
written into the source, so a rule file cannot inject code.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from apiwatch.detect.alert import SAMPLE_IDS, Alert
from apiwatch.detect.filters import Predicate, compile_filter, cost_of
from apiwatch.events import Event

#: One rule's entry point for one route: takes an event at a time, returns a new alert or None.
Feed = Callable[[Event, float], "Alert | None"]

#: A group key is absent (a field the rule groups by is missing).
MISSING: Any = object()


class Group:
    """One group's window state and the sample of its current episode."""

    __slots__ = ("first", "ids", "last", "n", "state")

    def __init__(self, state: Any, ts: float) -> None:
        self.state = state
        self.first = ts
        self.last = ts
        self.n = 0
        self.ids: list[str] = []


#: Single positive operators written inline; the value is known not to be None or a list.
_INLINE = {
    "equals": "v == {c}",
    "in": "v in {c}",
    "gte": "isinstance(v, NUMBER) and v >= {c}",
    "lte": "isinstance(v, NUMBER) and v <= {c}",
}


class _Source:
    """The lines and namespace of one generated function."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.lines: list[str] = []
        self.namespace = namespace

    def const(self, prefix: str, value: Any) -> str:
        name = f"{prefix}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def test(self, key: Any, cond: Any) -> None:
        """Statements returning None from the feed unless `key: cond` holds."""
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
            self.lines.append(f"    if not {pred}(event): return None")
        elif op == "exists":
            absent = "is None" if spec else "is not None"
            self.lines.append(f"    if get({self.const('N', name)}) {absent}: return None")
        else:
            field_pred = self.const("P", compile_filter({key: cond}))  # for a list value
            self.lines += [
                f"    v = get({self.const('N', name)})",
                "    if v is None: return None",
                f"    if isinstance(v, list):\n        if not {field_pred}(event): return None",
                f"    elif not ({_INLINE[op].format(c=self.const('C', spec))}): return None",
            ]

    def conjunction(self, spec: Mapping[str, Any]) -> None:
        """Statements returning None unless the filter `spec` holds, cheapest tests first."""
        entries = sorted(spec.items(), key=lambda item: cost_of({item[0]: item[1]}))
        for key, value in entries:
            if key in ("any", "all", "not"):
                pred = self.const("P", compile_filter({key: value}))
                self.lines.append(f"    if not {pred}(event): return None")
            else:
                self.test(key, value)


def build_feed(
    *,
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
) -> Feed:
    """A feed. `match` is a residual filter (True: every event of the route matches; False:
    none) or a predicate; `opens` says which events may create a group (True: any, False:
    none, or a predicate); `reset` and `ignore` are predicates or None (never); `key_names` is
    (name, optional) when the rule groups by one plain field, else `key_of` reads the key.
    `stats` gets `matched` and `evicted_cap` counted; `fire(key, group, ts, reason, event=)`
    raises (or folds) an alert."""
    src = _Source({
        "MISSING": MISSING, "Group": Group, "SAMPLE_IDS": SAMPLE_IDS, "NUMBER": (int, float),
        "isinstance": isinstance, "list": list, "tuple": tuple, "len": len, "str": str,
        "groups": groups, "lookup": groups.get, "touch": groups.move_to_end,
        "new": window.new, "add": window.add, "opens": opens, "max_keys": max_keys,
        "stats": stats, "fire": fire, "key_of": key_of,
        "reset": reset, "ignore": ignore,
    })
    lines = src.lines
    lines += ["def feed(event, ts):", "    get = event.get"]
    if reset is not None:
        lines.append("    if reset(event):\n        key = key_of(event)\n"
                     "        if key is not MISSING: groups.pop(key, None)\n        return None")
    if opens is True:
        _tests(src, match, ignore)
    key_lines = ["    key = key_of(event)", "    if key is MISSING: return None"]
    if key_names is not None:
        name, optional = key_names
        key_lines = [f"    key = get({src.const('N', name)})",
                     "    if key is None:" + (" pass" if optional else " return None"),
                     "    elif isinstance(key, list): key = tuple(key)"]
    lines += [*key_lines, "    group = lookup(key)"]
    if opens is not True:
        # Only an event that `opens` creates a group: test that before the filter, which may
        # cost more (every test is pure, so their order cannot change the answer).
        lines.append("    if group is None: return None" if opens is False
                     else "    if group is None and not opens(event): return None")
        _tests(src, match, ignore)
    lines += [
        "    if group is None:",
        "        if len(groups) >= max_keys:",
        "            groups.popitem(last=False)",
        "            stats.evicted_cap += 1",
        "        group = groups[key] = Group(new(), ts)",
        "    else:",
        "        touch(key)",
        "    stats.matched += 1",
        "    group.n += 1",
        "    if ts > group.last: group.last = ts",
        "    ids = group.ids",
        "    if len(ids) < SAMPLE_IDS:",
        "        event_id = get('event.id')",
        "        if isinstance(event_id, str): ids.append(event_id)",
        "    reason = add(group.state, ts, event)",
        "    if reason is None: return None",
        "    alert = fire(key, group, ts, reason, event=event)",
        "    group.first, group.n, group.ids = ts, 0, []",
        "    return alert",
    ]
    code = compile("\n".join(lines), "<apiwatch rule feed>", "exec")
    exec(code, src.namespace)  # noqa: S102 - fixed statements; rule values are in the namespace
    feed: Feed = src.namespace["feed"]
    return feed


def _tests(src: _Source, match: Any, ignore: Predicate | None) -> None:
    if match is False:
        src.lines.append("    return None")
    elif callable(match):
        src.lines.append(f"    if not {src.const('P', match)}(event): return None")
    elif match is not True:
        src.conjunction(match)
    if ignore is not None:
        src.lines.append("    if ignore(event): return None")
