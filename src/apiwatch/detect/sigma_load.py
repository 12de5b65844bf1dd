"""Reading Sigma files and collections into apiwatch rules, and rule files of either kind.

A collection is every Sigma YAML document read together (the documents of one file, or of all
the files given to `load_any`). Its correlations reference rules by `id` or `name`; a rule a
correlation references is not output on its own unless that correlation says `generate: true`
(Sigma correlation specification v2.1.0, "Generate"). Each document is parsed by pySigma;
pySigma 2.0 takes one condition operator per correlation while the specification allows a
range, so the condition mapping is read here (`sigma_correlation.parse_condition`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError as PySigmaError
from sigma.rule import SigmaRule

from apiwatch.detect.filters import compile_filter
from apiwatch.detect.rules import (
    GroupField,
    Rule,
    check_unique,
    parse_rule_docs,
    read_rule_files,
    yaml_documents,
)
from apiwatch.detect.sigma import (
    Refused,
    SigmaRuleError,
    describe,
    detection_filter,
    event_rule,
    map_field,
    rule_id,
    severity,
)
from apiwatch.detect.sigma_correlation import (
    Correlation,
    CorrelationWindow,
    engine_window,
    parse_condition,
)

AnySigma = SigmaRule | SigmaCorrelationRule


def is_sigma(doc: Any) -> bool:
    """Whether a YAML document is a Sigma rule (it has `logsource`/`detection` or
    `correlation`) rather than an apiwatch rule."""
    return isinstance(doc, Mapping) and bool(
        {"detection", "logsource", "correlation"} & set(doc))


def _parse(doc: Any, source: str) -> tuple[AnySigma, Any]:
    """The pySigma rule of one document, and its raw correlation condition."""
    title = doc.get("title", "?") if isinstance(doc, Mapping) else "?"
    where = f"{source}: Sigma rule {title!r}"
    if not isinstance(doc, Mapping):
        raise SigmaRuleError(f"{source}: a Sigma rule must be a mapping")
    if "action" in doc:
        raise SigmaRuleError(f"{where}: unsupported: collection action {doc['action']!r}")
    if "filter" in doc and "detection" not in doc:
        raise SigmaRuleError(f"{where}: unsupported: Sigma filters (meta-rules that amend "
                             "other rules)")
    try:
        if "correlation" not in doc:
            return SigmaRule.from_dict(dict(doc)), None
        body = doc["correlation"]
        raw = body.get("condition") if isinstance(body, Mapping) else None
        if isinstance(raw, Mapping):
            # pySigma accepts one operator; the range is read by parse_condition.
            first = next((k for k in raw if k != "field"), None)
            single = {k: v for k, v in raw.items() if k in ("field", first)}
            doc = {**doc, "correlation": {**body, "condition": single}}
        return SigmaCorrelationRule.from_dict(dict(doc)), raw
    except PySigmaError as exc:
        raise SigmaRuleError(f"{where}: {exc}") from None


class _Builder:
    """Translates a parsed collection, each rule once, refusing reference cycles."""

    def __init__(self, parsed: list[tuple[AnySigma, Any, str]]) -> None:
        self.parsed = parsed
        self.by_ref: dict[str, AnySigma] = {}
        self.meta = {id(r): (raw, source) for r, raw, source in parsed}
        for rule, _, _ in parsed:
            for ref in (rule.id, rule.name):
                if ref is not None:
                    self.by_ref[str(ref)] = rule
        self.specs: dict[int, Any] = {}
        self.corrs: dict[int, tuple[Correlation, list[Any], bool]] = {}
        self.building: set[int] = set()

    def refused(self, rule: AnySigma, what: str) -> SigmaRuleError:
        return SigmaRuleError(f"{self.meta[id(rule)][1]}: {describe(rule)}: unsupported: "
                              f"{what}")

    def refs(self, corr: SigmaCorrelationRule) -> list[AnySigma]:
        out = []
        for ref in corr.rules or []:
            target = self.by_ref.get(ref.reference)
            if target is None:
                raise SigmaRuleError(f"{self.meta[id(corr)][1]}: {describe(corr)}: references "
                                     f"rule {ref.reference!r}, not found in the collection")
            out.append(target)
        return out

    def spec(self, rule: SigmaRule) -> Any:
        if id(rule) not in self.specs:
            try:
                self.specs[id(rule)] = detection_filter(rule)
            except Refused as exc:
                raise self.refused(rule, str(exc)) from None
        return self.specs[id(rule)]

    def correlation(self, corr: SigmaCorrelationRule) -> tuple[Correlation, list[Any], bool]:
        """The evaluator, the filters of the Sigma rules it rests on, and whether it
        references correlations (a chain)."""
        if id(corr) in self.corrs:
            return self.corrs[id(corr)]
        if id(corr) in self.building:
            raise self.refused(corr, "a cycle of correlations referencing each other")
        self.building.add(id(corr))
        kind = corr.type.name.lower()
        try:
            if kind in ("value_percentile", "value_median"):
                raise Refused(f"{kind} (no streaming percentile per group here)")
            targets = self.refs(corr)
            cond = parse_condition(self.meta[id(corr)][0], kind, len(targets))
            aliases = self.aliases(corr, targets)
        except Refused as exc:
            raise self.refused(corr, str(exc)) from None
        if cond.field is not None:
            cond = type(cond)(cond.bounds, map_field(cond.field))
        refs: list[Any] = []
        leaves: list[Any] = []
        for target in targets:
            if isinstance(target, SigmaCorrelationRule):
                inner, inner_leaves, _ = self.correlation(target)
                if not inner.sliding:
                    raise self.refused(corr, f"referencing correlation {target.title!r}, which "
                                             "is judged on whole windows (an upper bound, or "
                                             "value_avg): its matches are not at an event")
                refs.append(inner)
                leaves += inner_leaves
            else:
                spec = self.spec(target)
                refs.append(compile_filter(spec))
                leaves.append(spec)
        built = Correlation(
            title=str(corr.title), kind=kind, refs=refs,
            group_by=[f if f in aliases else map_field(f) for f in corr.group_by or []],
            seconds=float(corr.timespan.seconds), cond=cond, aliases=aliases,
        )
        chained = any(isinstance(t, SigmaCorrelationRule) for t in targets)
        self.corrs[id(corr)] = (built, leaves, chained)
        self.building.discard(id(corr))
        return self.corrs[id(corr)]

    def aliases(self, corr: SigmaCorrelationRule,
                targets: list[AnySigma]) -> dict[str, list[str]]:
        """Each alias as the field to read for each referenced rule, in `targets` order."""
        out: dict[str, list[str]] = {}
        for alias in corr.aliases:
            fields: dict[int, str] = {}
            for ref, name in alias.mapping.items():
                target = self.by_ref.get(ref.reference)
                if target is None or all(t is not target for t in targets):
                    raise Refused(f"alias {alias.alias!r} names rule {ref.reference!r}, "
                                  "which the correlation does not reference")
                fields[id(target)] = map_field(str(name))
            missing = [describe(t) for t in targets if id(t) not in fields]
            if missing:
                raise Refused(f"alias {alias.alias!r} names no field for {missing[0]}")
            out[alias.alias] = [fields[id(t)] for t in targets]
        if out and any(isinstance(t, SigmaCorrelationRule) for t in targets):
            raise Refused("aliases on a correlation that references correlations (the "
                          "field would depend on which inner correlation completed)")
        return out

    def correlation_rule(self, corr: SigmaCorrelationRule) -> Rule:
        built, leaves, chained = self.correlation(corr)
        spec = leaves[0] if len(leaves) == 1 else {"any": leaves}
        window = None if chained else engine_window(built.kind, built.cond, built.seconds)
        return Rule(
            id=rule_id(corr), title=str(corr.title), description=str(corr.description or ""),
            severity=severity(corr), match=compile_filter(spec),
            # A chain's referenced correlations must see events lacking this one's fields.
            group_by=tuple(GroupField((f,), optional=chained) for f in built.group_by),
            window=window or CorrelationWindow(built, strict_keys=chained),
            suppress=built.seconds, reset_on=None, ignore=None, tests=(), requires=(),
            source=self.meta[id(corr)][1], specs=(spec, None, None),
            key_of=built.engine_key if built.has_aliases else None,
        )

    def rules(self) -> list[Rule]:
        hidden: set[int] = set()
        for rule, _, _ in self.parsed:
            if isinstance(rule, SigmaCorrelationRule) and not rule.generate:
                hidden.update(id(t) for t in self.refs(rule))
        out = []
        for rule, _, source in self.parsed:
            if isinstance(rule, SigmaCorrelationRule):
                built = self.correlation_rule(rule)
                if id(rule) not in hidden:
                    out.append(built)
            else:
                self.spec(rule)  # every rule is checked, output or not
                if id(rule) not in hidden:
                    out.append(event_rule(rule, source))
        return out


def parse_sigma_docs(docs: Iterable[tuple[Any, str]]) -> list[Rule]:
    """The apiwatch rules of a Sigma collection given as (YAML document, source) pairs."""
    parsed = []
    for doc, source in docs:
        rule, raw = _parse(doc, source)
        parsed.append((rule, raw, source))
    return _Builder(parsed).rules()


def parse_sigma_text(text: str, source: str = "<sigma>") -> list[Rule]:
    """The rules of one Sigma YAML text (one or several `---` documents)."""
    return parse_sigma_docs((doc, source) for doc in yaml_documents(text, source))


def load_any(*paths: str | Path) -> list[Rule]:
    """The rules of YAML files and directories (`*.yaml`, `*.yml`, sorted), each file read as
    Sigma when one of its documents is a Sigma rule, else as apiwatch rules. The Sigma files
    given together form one collection. Rule ids must be unique."""
    rules: list[Rule] = []
    sigma_docs: list[tuple[Any, str]] = []
    for name, text in read_rule_files(*paths):
        docs = yaml_documents(text, name)
        if any(is_sigma(d) for d in docs):
            sigma_docs += [(d, name) for d in docs]
        else:
            rules += parse_rule_docs(docs, name)
    rules += parse_sigma_docs(sigma_docs)
    check_unique(rules)
    return rules
