"""apiwatch's rule format: YAML documents parsed into typed, compiled rules.

One file holds one rule, several YAML documents (`---`) or a list of rules. A rule:

    id: brute_force_ip_fast            # lower_snake_case, unique
    title: Brute force from one address
    severity: high                     # low | medium | high | critical
    filter: {event.action: authn_login_fail}   # see apiwatch.detect.filters
    group_by: [source.ip]              # fields; `a|b` = first present; `f?` = may be absent
    window: {type: leaky_bucket, capacity: 5, leak: 10s}
    suppress: 10m                      # one alert per group per this much event time
    reset_on: {...}                    # a filter: a matching event clears the group's state
    allowlist: {source.ip: {cidr: [10.0.0.0/8]}}   # a filter: matching events are ignored
    overrides: {tenant-a: {window: {capacity: 20}}} # per `apiwatch.tenant`, merged in
    requires: [source.as.number]       # fields the rule needs: it sees only events with them
    tests: [{name: ..., events: [...], alerts: 1}]  # inline expectations (`apiwatch rules test`)

`requires` names fields that only an optional input provides (`source.as.number` needs an ASN
database, `apiwatch.enrich`): the rule stays loaded but sees no event without them, so it is
quiet, and `apiwatch rules lint` says what it needs.

Window types and their keys are listed in `WINDOW_KEYS`; durations are `30s`, `10m`, `2h`,
`7d` or a number of seconds. Every error names the file, the rule and the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from apiwatch.detect.alert import SEVERITIES
from apiwatch.detect.filters import FilterError, Predicate, compile_filter
from apiwatch.detect.history import Absence, Baseline, FirstSeen
from apiwatch.detect.windows import (
    Count,
    Distinct,
    Each,
    FieldRef,
    LeakyBucket,
    Ordered,
    Ratio,
    Step,
    Sum,
)
from apiwatch.errors import ApiwatchError

#: Every window type a rule may use.
Window = (
    LeakyBucket | Count | Distinct | Ratio | Sum | Ordered | FirstSeen | Baseline | Absence | Each
)


class RuleError(ApiwatchError):
    """A rule file is invalid; the message names the file, the rule and the key."""


#: The keys each window type accepts (besides `type`); those without a default are required.
WINDOW_KEYS: dict[str, dict[str, Any]] = {
    "leaky_bucket": {"capacity": None, "leak": None},
    "count": {"threshold": None, "within": None, "min_gap": 0},
    "distinct": {"fields": None, "within": None, "exact_limit": 2048},
    "ratio": {"match": None, "threshold": None, "min_total": None, "within": None},
    "sum": {"field": None, "threshold": None, "within": None},
    "sequence": {"steps": None, "within": None},
    "first_seen": {"field": None, "network": False, "learn_events": 20, "learn": "1d",
                   "forget": "30d", "max_values": 256},
    "baseline": {"interval": None, "alpha": 0.1, "k": 4.0, "min_value": None,
                 "min_deviation": 1.0, "warmup": 10, "sum": None, "match": None,
                 "min_total": 0},
    "absence": {"factor": 10.0, "min_silence": None, "min_events": 20, "forget": "7d"},
    "each": {},
}
_RULE_KEYS = frozenset({
    "id", "title", "description", "severity", "filter", "group_by", "window", "suppress",
    "reset_on", "allowlist", "overrides", "requires", "tests", "references",
})
_ID = re.compile(r"[a-z][a-z0-9_]*")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


@dataclass(frozen=True, slots=True)
class GroupField:
    """One group-by entry: alternative field names (first present wins), maybe optional."""

    names: FieldRef
    optional: bool = False


@dataclass(frozen=True, slots=True)
class RuleTest:
    """An inline expectation: these events make the rule raise `alerts` alerts."""

    name: str
    events: tuple[dict[str, Any], ...]
    alerts: int


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled detection rule (one per tenant override, sharing the `id`)."""

    id: str
    title: str
    description: str
    severity: str
    match: Predicate
    group_by: tuple[GroupField, ...]
    window: Window
    suppress: float
    reset_on: Predicate | None
    ignore: Predicate | None
    tests: tuple[RuleTest, ...]
    requires: tuple[str, ...]
    source: str
    tenant: str | None = None  # set on a per-tenant override
    #: The filter, reset_on and allowlist mappings compiled into `match`, `reset_on` and
    #: `ignore`, if known: the engine then specializes them per class of events (see
    #: `filters.residual`); without them it uses the compiled predicates on every event.
    specs: tuple[Any, Any, Any] | None = field(default=None, compare=False)
    #: Reads the group key instead of `group_by`'s fields (Sigma aliases: the field depends
    #: on the rule an event matched); returns `feeds.MISSING` when the event has no key.
    key_of: Callable[[Any], Any] | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """Unique among loaded rules: the id, with `@tenant` for an override."""
        return self.id if self.tenant is None else f"{self.id}@{self.tenant}"


def parse_duration(value: Any, where: str) -> float:
    """Seconds of `30s`, `10m`, `2h`, `7d`, `250ms` or a plain number."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    m = _DURATION.fullmatch(str(value).strip()) if isinstance(value, str) else None
    if m is None:
        raise RuleError(f"{where}: expected a duration like 30s, 10m, 2h or 7d, got {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _ref(value: Any, where: str) -> FieldRef:
    if not isinstance(value, str) or not value.strip("|?"):
        raise RuleError(f"{where}: expected a field name, got {value!r}")
    return tuple(part.strip() for part in value.split("|"))


def _number(value: Any, where: str, *, integer: bool = False, low: float = 0) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if not ok or isinstance(value, bool) or value < low:
        kind = "an integer" if integer else "a number"
        raise RuleError(f"{where}: expected {kind} >= {low:g}, got {value!r}")
    return value


def _filter(spec: Any, where: str) -> Predicate:
    try:
        return compile_filter(spec, where)
    except FilterError as exc:
        raise RuleError(str(exc)) from None


def build_window(spec: Any, where: str) -> Window:
    """The window a rule's `window` mapping describes."""
    if not isinstance(spec, Mapping) or spec.get("type") not in WINDOW_KEYS:
        raise RuleError(f"{where}.type: expected one of {', '.join(WINDOW_KEYS)}")
    kind = spec["type"]
    known = WINDOW_KEYS[kind]
    for key in spec:
        if key != "type" and key not in known:
            raise RuleError(f"{where}.{key}: unknown key for a {kind} window")
    p = {k: spec.get(k, default) for k, default in known.items()}
    for key, value in p.items():
        if value is None and key not in ("sum", "match"):
            raise RuleError(f"{where}.{key}: required for a {kind} window")
    w = where
    if kind == "leaky_bucket":
        return LeakyBucket(_number(p["capacity"], f"{w}.capacity", integer=True, low=1),
                           parse_duration(p["leak"], f"{w}.leak"))
    if kind == "count":
        return Count(_number(p["threshold"], f"{w}.threshold", integer=True, low=1),
                     parse_duration(p["within"], f"{w}.within"),
                     parse_duration(p["min_gap"], f"{w}.min_gap"))
    if kind == "distinct":
        fields = p["fields"]
        if not isinstance(fields, Mapping) or not fields:
            raise RuleError(f"{w}.fields: expected a mapping of field to distinct threshold")
        return Distinct(
            [(_ref(f, f"{w}.fields"), _number(t, f"{w}.fields.{f}", integer=True, low=1))
             for f, t in fields.items()],
            parse_duration(p["within"], f"{w}.within"),
            _number(p["exact_limit"], f"{w}.exact_limit", integer=True, low=1),
        )
    if kind == "ratio":
        threshold = _number(p["threshold"], f"{w}.threshold")
        if threshold > 1:
            raise RuleError(f"{w}.threshold: a ratio is at most 1, got {threshold!r}")
        return Ratio(_filter(p["match"], f"{w}.match"), threshold,
                     _number(p["min_total"], f"{w}.min_total", integer=True, low=1),
                     parse_duration(p["within"], f"{w}.within"))
    if kind == "sum":
        return Sum(_ref(p["field"], f"{w}.field"), _number(p["threshold"], f"{w}.threshold"),
                   parse_duration(p["within"], f"{w}.within"))
    if kind == "sequence":
        steps = p["steps"]
        if not isinstance(steps, list) or len(steps) < 2:
            raise RuleError(f"{w}.steps: expected a list of at least two steps")
        built = []
        for i, step in enumerate(steps):
            sw = f"{w}.steps[{i}]"
            if not isinstance(step, Mapping) or "filter" not in step:
                raise RuleError(f"{sw}: expected a mapping with a filter")
            built.append(Step(_filter(step["filter"], f"{sw}.filter"),
                              _number(step.get("min", 1), f"{sw}.min", integer=True, low=1),
                              str(step.get("label", f"step {i + 1}")), step["filter"]))
        return Ordered(built, parse_duration(p["within"], f"{w}.within"))
    if kind == "first_seen":
        return FirstSeen(
            _ref(p["field"], f"{w}.field"),
            learn_events=_number(p["learn_events"], f"{w}.learn_events", integer=True),
            learn_seconds=parse_duration(p["learn"], f"{w}.learn"),
            forget=parse_duration(p["forget"], f"{w}.forget"),
            max_values=_number(p["max_values"], f"{w}.max_values", integer=True, low=1),
            network=bool(p["network"]),
        )
    if kind == "baseline":
        if p["sum"] is not None and p["match"] is not None:
            raise RuleError(f"{w}: give `sum` or `match`, not both")
        return Baseline(
            interval=parse_duration(p["interval"], f"{w}.interval"),
            alpha=_number(p["alpha"], f"{w}.alpha"),
            k=_number(p["k"], f"{w}.k"),
            min_value=_number(p["min_value"], f"{w}.min_value"),
            min_deviation=_number(p["min_deviation"], f"{w}.min_deviation"),
            warmup=_number(p["warmup"], f"{w}.warmup", integer=True),
            sum_ref=None if p["sum"] is None else _ref(p["sum"], f"{w}.sum"),
            match=None if p["match"] is None else _filter(p["match"], f"{w}.match"),
            min_total=_number(p["min_total"], f"{w}.min_total", integer=True),
        )
    if kind == "absence":
        return Absence(factor=_number(p["factor"], f"{w}.factor"),
                       min_silence=parse_duration(p["min_silence"], f"{w}.min_silence"),
                       min_events=_number(p["min_events"], f"{w}.min_events", integer=True),
                       forget=parse_duration(p["forget"], f"{w}.forget"))
    return Each()


def _group_by(spec: Any, where: str) -> tuple[GroupField, ...]:
    if spec is None:
        return ()
    if not isinstance(spec, list):
        raise RuleError(f"{where}: expected a list of field names")
    out = []
    for i, item in enumerate(spec):
        text = item if isinstance(item, str) else ""
        optional = text.endswith("?")
        out.append(GroupField(_ref(text.rstrip("?"), f"{where}[{i}]"), optional))
    return tuple(out)


def _tests(spec: Any, where: str) -> tuple[RuleTest, ...]:
    if spec is None:
        return ()
    if not isinstance(spec, list):
        raise RuleError(f"{where}: expected a list of tests")
    out = []
    for i, test in enumerate(spec):
        tw = f"{where}[{i}]"
        if not isinstance(test, Mapping) or not isinstance(test.get("events"), list):
            raise RuleError(f"{tw}: expected a mapping with `events` (a list) and `alerts`")
        events = tuple(expand_test_events(test["events"], f"{tw}.events"))
        alerts = _number(test.get("alerts"), f"{tw}.alerts", integer=True)
        out.append(RuleTest(str(test.get("name", f"test {i + 1}")), events, alerts))
    return tuple(out)


#: Inline test events give `t` in seconds after this instant instead of an `@timestamp`.
TEST_EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z


def expand_test_events(items: list[Any], where: str) -> Iterator[dict[str, Any]]:
    """Inline test events: an event mapping (with `t`, seconds after TEST_EPOCH, or an
    `@timestamp`), or `{repeat: N, every: SECONDS, event: {...}}` for N copies."""
    from apiwatch.events import format_timestamp  # noqa: PLC0415 - keeps import order simple

    for i, item in enumerate(items):
        iw = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise RuleError(f"{iw}: expected an event mapping")
        base = item.get("event", item) if "repeat" in item else item
        if not isinstance(base, Mapping):
            raise RuleError(f"{iw}.event: expected an event mapping")
        count = _number(item.get("repeat", 1), f"{iw}.repeat", integer=True, low=1)
        every = _number(item.get("every", 1), f"{iw}.every")
        start = _number(base.get("t", 0), f"{iw}.t")
        for n in range(count):
            event = {k: v for k, v in base.items() if k != "t"}
            if "@timestamp" not in event:
                ns = round((TEST_EPOCH + start + n * every) * 1e9)
                event["@timestamp"] = format_timestamp(ns)
            event.setdefault("event.id", f"test-{i}-{n}")
            yield event


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _and(spec: Any, extra: dict[str, Any]) -> dict[str, Any]:
    return {**extra, "all": [spec]} if spec else extra


def _require(spec: Any, fields: list[str]) -> Any:
    """The filter `spec` with `fields` required present; merged into a plain mapping when it
    has no entry for them, so that the engine still inlines its tests."""
    if not fields:
        return spec
    extra = {name: {"exists": True} for name in fields}
    if spec is None or (isinstance(spec, Mapping) and not set(spec) & set(extra)):
        return {**(spec or {}), **extra}
    return _and(spec, extra)


def parse_rule(spec: Any, source: str) -> list[Rule]:
    """The compiled rule(s) of one rule mapping: the rule, then one per tenant override."""
    if not isinstance(spec, Mapping):
        raise RuleError(f"{source}: a rule must be a mapping, got {type(spec).__name__}")
    rid = spec.get("id")
    if not isinstance(rid, str) or not _ID.fullmatch(rid):
        raise RuleError(f"{source}: key 'id': expected a lower_snake_case name, got {rid!r}")
    where = f"{source}: rule {rid!r}"
    for key in spec:
        if key not in _RULE_KEYS:
            raise RuleError(f"{where}: unknown key {key!r}")
    overrides = spec.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        raise RuleError(f"{where}: key 'overrides': expected a mapping of tenant to changes")
    base = dict(spec)
    if overrides:
        base["filter"] = _and(spec.get("filter"),
                              {"apiwatch.tenant": {"not_in": [str(t) for t in overrides]}})
    rules = [_build(base, where, source, None)]
    for tenant, changes in overrides.items():
        if not isinstance(changes, Mapping):
            raise RuleError(f"{where}: key 'overrides.{tenant}': expected a mapping")
        merged = _merge(spec, changes)
        merged["filter"] = _and(merged.get("filter"), {"apiwatch.tenant": str(tenant)})
        rules.append(_build(merged, f"{where} (tenant {tenant})", source, str(tenant)))
    return rules


def _build(spec: Mapping[str, Any], where: str, source: str, tenant: str | None) -> Rule:
    severity = spec.get("severity", "medium")
    if severity not in SEVERITIES:
        raise RuleError(f"{where}: key 'severity': expected one of {SEVERITIES}")
    requires = spec.get("requires") or []
    if not isinstance(requires, list) or not all(
            isinstance(r, str) and r and "|" not in r for r in requires):
        raise RuleError(f"{where}: key 'requires': expected a list of field names")
    reset_spec = spec.get("reset_on")
    allow_spec = spec.get("allowlist")
    filter_spec = _require(spec.get("filter"), requires)
    return Rule(
        id=str(spec["id"]),
        title=str(spec.get("title", spec["id"])),
        description=str(spec.get("description", "")).strip(),
        severity=severity,
        match=_filter(filter_spec, f"{where}: key 'filter'"),
        group_by=_group_by(spec.get("group_by"), f"{where}: key 'group_by'"),
        window=build_window(spec.get("window"), f"{where}: key 'window'"),
        suppress=parse_duration(spec.get("suppress", "10m"), f"{where}: key 'suppress'"),
        reset_on=None if reset_spec is None else _filter(reset_spec, f"{where}: key 'reset_on'"),
        ignore=None if allow_spec is None else _filter(allow_spec, f"{where}: key 'allowlist'"),
        tests=_tests(spec.get("tests"), f"{where}: key 'tests'"),
        requires=tuple(requires),
        source=source,
        tenant=tenant,
        specs=(filter_spec, reset_spec, allow_spec),
    )


def yaml_documents(text: str, source: str) -> list[Any]:
    """The non-empty YAML documents of `text`; a RuleError naming `source` if it is not YAML."""
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise RuleError(f"{source}: invalid YAML: {' '.join(str(exc).split())}") from None


def parse_rules_text(text: str, source: str) -> list[Rule]:
    """The rules of one YAML text (documents, each a rule or a list of rules)."""
    return parse_rule_docs(yaml_documents(text, source), source)


def parse_rule_docs(docs: list[Any], source: str) -> list[Rule]:
    """The rules of parsed YAML documents, each a rule or a list of rules."""
    rules: list[Rule] = []
    for doc in docs:
        for spec in doc if isinstance(doc, list) else [doc]:
            rules.extend(parse_rule(spec, source))
    return rules


def read_rule_files(*paths: str | Path) -> Iterator[tuple[str, str]]:
    """(file name, text) of YAML files and directories (`*.yaml`, `*.yml`, sorted)."""
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        elif path.is_file():
            files = [path]
        else:
            raise RuleError(f"{path}: no such rule file or directory")
        for file in files:
            try:
                yield str(file), file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise RuleError(f"{file}: cannot read: {exc}") from None


def load_rules(*paths: str | Path) -> list[Rule]:
    """The rules of YAML files and directories (`*.yaml`, `*.yml`, sorted); ids must be unique."""
    rules = [rule for name, text in read_rule_files(*paths)
             for rule in parse_rules_text(text, name)]
    check_unique(rules)
    return rules


def load_catalogue() -> list[Rule]:
    """The built-in catalogue shipped in `apiwatch/detect/catalogue/`."""
    rules: list[Rule] = []
    folder = resources.files("apiwatch.detect") / "catalogue"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            rules.extend(parse_rules_text(entry.read_text(encoding="utf-8"),
                                          f"catalogue/{entry.name}"))
    check_unique(rules)
    return rules


def check_unique(rules: list[Rule]) -> None:
    """Refuse two rules with one id, naming both files."""
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.key in seen:
            raise RuleError(f"{rule.source}: rule id {rule.id!r} is also defined in "
                            f"{seen[rule.key]}")
        seen[rule.key] = rule.source
