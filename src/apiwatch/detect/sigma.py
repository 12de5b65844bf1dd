"""Sigma rules (https://sigmahq.io) as apiwatch rules: parsed with pySigma, compiled to filters.

A single-event Sigma rule becomes an apiwatch `Rule` whose filter is the rule's detection
condition written in apiwatch's filter language (`apiwatch.detect.filters`), so the engine
routes and evaluates it like any YAML rule; it raises an alert per matching event, grouped by
`source.ip` (when present) with the engine's usual 10-minute suppression. Correlation rules
(Sigma correlation specification v2.1.0) are built by `apiwatch.detect.sigma_correlation`;
`apiwatch.detect.sigma_load` reads files and collections.

Matching follows the Sigma specification: strings compare case-insensitively (`|cased`
excepted) with `*` and `?` wildcards; `|re` is a Python `re.search` (unanchored) with the
`i`, `m`, `s` flags; a number matches the number or its decimal text; `null` means absent.
Modifiers supported: contains, startswith, endswith, all, re (+ i/m/s), cidr, cased, exists,
base64, base64offset, wide/utf16*, windash, lt/lte/gt/gte/neq. Conditions: and, or, not,
parentheses, `1 of x*`, `all of x*`, `1 of them`, `all of them`. Keywords (values without a
field) match a substring of any of `KEYWORD_FIELDS`.

Field names: an ECS name is used as is; the Sigma web/proxy taxonomy is mapped by
`SIGMA_FIELDS`; any other name is kept unchanged (a rule about fields apiwatch events never
carry, such as CloudTrail's `eventName`, loads but cannot match).

Refused, with an error naming the rule and the feature, never silently dropped: `|fieldref`,
`|expand` placeholders, timestamp-part modifiers (`|minute`...), Sigma 1 aggregations in the
condition (`| count() by`), collection actions (`action: global`), Sigma filters, and a
correlation's unsupported features (see `sigma_correlation`).
"""

from __future__ import annotations

import re
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError as PySigmaError
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from apiwatch.detect.filters import FilterError, compile_filter
from apiwatch.detect.rules import GroupField, Rule, RuleError
from apiwatch.detect.windows import Each

#: Sigma web server / proxy taxonomy fields and their ECS names in apiwatch events. The
#: SigmaHQ rules use `cs-uri-query` for the whole request target (`/mgmt/tm/util/bash`,
#: `~1...a.aspx`), so it maps to `url.original`, which holds path and query; `c-uri-query`
#: (proxy) is the query alone.
SIGMA_FIELDS: dict[str, str] = {
    "c-ip": "source.ip",
    "src_ip": "source.ip",
    "s-ip": "destination.ip",
    "dst_ip": "destination.ip",
    "c-uri": "url.original",
    "cs-uri": "url.original",
    "cs-uri-query": "url.original",
    "c-uri-query": "url.query",
    "c-uri-stem": "url.path",
    "cs-uri-stem": "url.path",
    "c-uri-extension": "url.extension",
    "cs-host": "url.domain",
    "cs-method": "http.request.method",
    "c-useragent": "user_agent.original",
    "cs-user-agent": "user_agent.original",
    "cs-referrer": "http.request.referrer",
    "cs-referer": "http.request.referrer",
    "sc-status": "http.response.status_code",
    "cs-username": "user.name",
    "cs-version": "http.version",
    "cs-bytes": "http.request.bytes",
    "sc-bytes": "http.response.bytes",
}
#: Where a Sigma keyword (a value without a field) is looked for: the raw log line when the
#: event came from a log file, and the request's text fields for events captured in the API.
KEYWORD_FIELDS = ("event.original", "url.original", "user_agent.original",
                  "http.request.referrer")
#: Sigma `level` to apiwatch severity.
LEVELS = {"informational": "low", "low": "low", "medium": "medium", "high": "high",
          "critical": "critical"}
#: Alerts of a single-event Sigma rule: grouped by the client address, one per 10 minutes.
EVENT_GROUP_BY = (GroupField(("source.ip",), optional=True),)
EVENT_SUPPRESS = 600.0


class SigmaRuleError(RuleError):
    """A Sigma rule is invalid or uses a feature apiwatch does not evaluate; the message names
    the file, the rule and the feature."""


class Refused(Exception):
    """A feature of the rule being translated is not supported (the message names it)."""


def map_field(name: str) -> str:
    """The apiwatch (ECS) field name of a Sigma field name."""
    return SIGMA_FIELDS.get(name, name)


# --- values ------------------------------------------------------------------------------


def _pattern(value: SigmaString, *, anchored: bool) -> str:
    """A Sigma string with wildcards as a regex body; leading / trailing `*` drop the anchor."""
    parts: list[str] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            raise Refused(f"placeholder %{part.name}% (the expand modifier)")
        if part is SpecialChars.WILDCARD_MULTI:
            parts.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            parts.append(".")
        else:
            parts.append(re.escape(str(part)))
    head = not parts or parts[0] != ".*"
    tail = not parts or parts[-1] != ".*"
    body = "".join(parts[1 if not head else 0:len(parts) - (0 if tail else 1)])
    if anchored:
        body = ("\\A" if head else "") + body + ("\\Z" if tail else "")
    return body


def _string(value: SigmaString, *, keyword: bool) -> dict[str, Any]:
    """The condition of a Sigma string; a keyword matches a substring."""
    cased = isinstance(value, SigmaCasedString)
    if not keyword and not value.contains_special():
        text = value.to_plain()
        if cased or text.lower() == text.upper():  # nothing a case-insensitive test could fold
            numeric = text.isdigit() and str(int(text)) == text
            return {"in": [text, int(text)]} if numeric else {"equals": text}
    flags = "(?s)" if cased else "(?si)"
    return {"regex": flags + _pattern(value, anchored=not keyword)}


def _number(number: int | float) -> list[Any]:
    return [number, str(number)]


def _condition(value: SigmaType, *, keyword: bool = False) -> dict[str, Any] | list[Any]:
    """The apiwatch condition of one Sigma value (a list: any of these conditions)."""
    if isinstance(value, SigmaString):
        return _string(value, keyword=keyword)
    if isinstance(value, SigmaExpansion):
        return [_condition(v, keyword=keyword) for v in value.values]
    if keyword:
        raise Refused(f"a {type(value).__name__} keyword (keywords must be strings)")
    if isinstance(value, SigmaCompareExpression):
        bound = value.number.number
        op = value.op
        if op is CompareOperators.NEQ:
            return {"exists": True, "not_in": _number(bound)}
        base = {"gte": bound} if op in (CompareOperators.GT, CompareOperators.GTE) else {
            "lte": bound}
        return {**base, "not_equals": bound} if op in (CompareOperators.GT,
                                                       CompareOperators.LT) else base
    if isinstance(value, SigmaTimestampPart):  # a SigmaNumber: test it first
        raise Refused(f"the {value.timestamp_part.name.lower()} modifier (timestamp parts)")
    if isinstance(value, SigmaNumber):
        return {"in": _number(value.number)}
    if isinstance(value, SigmaBool):
        return {"equals": value.boolean}
    if isinstance(value, SigmaNull):
        return {"exists": False}
    if isinstance(value, SigmaExists):
        return {"exists": value.exists}
    if isinstance(value, SigmaRegularExpression):
        letters = {SigmaRegularExpressionFlag.IGNORECASE: "i",
                   SigmaRegularExpressionFlag.MULTILINE: "m",
                   SigmaRegularExpressionFlag.DOTALL: "s"}
        flags = "".join(sorted(letters[f] for f in value.flags))
        return {"regex": (f"(?{flags})" if flags else "") + str(value.regexp)}
    if isinstance(value, SigmaCIDRExpression):
        return {"cidr": value.cidr}
    names = {"SigmaFieldReference": "the fieldref modifier (comparing two fields)",
             "SigmaQueryExpression": "query expressions"}
    raise Refused(names.get(type(value).__name__, f"values of type {type(value).__name__}"))


# --- conditions --------------------------------------------------------------------------


def _item(field: str | None, value: SigmaType) -> dict[str, Any]:
    cond = _condition(value, keyword=field is None)
    conds = cond if isinstance(cond, list) else [cond]
    if field is None:
        return _join("any", [{f: c} for c in conds for f in KEYWORD_FIELDS])
    name = map_field(field)
    return _join("any", [{name: c} for c in conds])


def _join(kind: str, specs: list[dict[str, Any]]) -> dict[str, Any]:
    """`any` / `all` of filters, flattened, with one-field regexes of an `any` merged."""
    flat: list[dict[str, Any]] = []
    for spec in specs:
        flat.extend(spec[kind] if spec.keys() == {kind} else [spec])
    if kind == "any":
        flat = _merge_regexes(flat)
    return flat[0] if len(flat) == 1 else {kind: flat}


_FLAGS = re.compile(r"(?:\(\?[a-z]+\))?")
_UNMERGEABLE = re.compile(r"\\\d|\(\?P[<=]")  # back-references and named groups


def _merge_regexes(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`{f: {regex: a}}, {f: {regex: b}}` (same flags) as `{f: {regex: (?:a)|(?:b)}}`: one
    search per event instead of one per value of a long Sigma list."""
    out: list[dict[str, Any] | tuple[str, str]] = []
    bodies: dict[tuple[str, str], list[str]] = {}
    for spec in specs:
        name, cond = next(iter(spec.items()))
        pattern = cond.get("regex") if isinstance(cond, dict) and len(cond) == 1 else None
        if len(spec) != 1 or not isinstance(pattern, str) or _UNMERGEABLE.search(pattern):
            out.append(spec)
            continue
        flags = _FLAGS.match(pattern).group(0)  # type: ignore[union-attr] # always matches
        key = (str(name), flags)
        if key not in bodies:
            bodies[key] = []
            out.append(key)
        bodies[key].append(pattern[len(flags):])
    merged: list[dict[str, Any]] = []
    for item in out:
        if isinstance(item, dict):
            merged.append(item)
            continue
        found = bodies[item]
        body = found[0] if len(found) == 1 else "|".join(f"(?:{b})" for b in found)
        merged.append({item[0]: {"regex": item[1] + body}})
    return merged


def _tree(node: Any) -> dict[str, Any]:
    """A pySigma condition tree (detection items already expanded) as an apiwatch filter."""
    if isinstance(node, ConditionAND | ConditionOR):
        kind = "all" if isinstance(node, ConditionAND) else "any"
        return _join(kind, [_tree(arg) for arg in node.args])
    if isinstance(node, ConditionNOT):
        return {"not": _tree(node.args[0])}
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _item(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        return _item(None, node.value)
    raise Refused(f"condition element {type(node).__name__}")


def detection_filter(rule: SigmaRule) -> dict[str, Any]:
    """The apiwatch filter of a single-event Sigma rule's detection (its conditions OR-ed);
    raises `Refused` naming an unsupported feature."""
    specs = []
    for condition in rule.detection.parsed_condition:
        try:
            parsed = condition.parsed
        except PySigmaError as exc:
            raise Refused(f"condition {condition.condition!r}: {exc}") from None
        specs.append(_tree(parsed))
    spec = _join("any", specs)
    try:
        compile_filter(spec)  # proves the translation valid (regexes compile)
    except FilterError as exc:
        raise Refused(str(exc)) from None
    return spec


# --- loading -----------------------------------------------------------------------------


def rule_id(rule: Any) -> str:
    """An apiwatch rule id for a pySigma rule: its `id`, else its `name`, else its title."""
    if rule.id is not None:
        return str(rule.id)
    if rule.name:
        return str(rule.name)
    return re.sub(r"[^a-z0-9]+", "_", str(rule.title).lower()).strip("_") or "sigma_rule"


def describe(rule: Any) -> str:
    """`rule 'title' (id)` for messages."""
    ident = rule.id or rule.name
    return f"Sigma rule {rule.title!r}" + (f" ({ident})" if ident else "")


def severity(rule: Any) -> str:
    """The apiwatch severity of a Sigma `level` (medium when absent)."""
    return LEVELS.get(str(rule.level or "medium").lower(), "medium")


class _SigmaMatch(Each):
    """Each matching event fires; the reason names the Sigma rule."""

    def __init__(self, title: str) -> None:
        self.reason = f"matched Sigma rule {title!r}"

    def add(self, state: None, ts: float, event: Any) -> str | None:
        return self.reason


def event_rule(rule: SigmaRule, source: str) -> Rule:
    """The apiwatch rule of a single-event Sigma rule."""
    try:
        spec = detection_filter(rule)
    except Refused as exc:
        raise SigmaRuleError(f"{source}: {describe(rule)}: unsupported: {exc}") from None
    return Rule(
        id=rule_id(rule), title=str(rule.title), description=str(rule.description or ""),
        severity=severity(rule), match=compile_filter(spec), group_by=EVENT_GROUP_BY,
        window=_SigmaMatch(str(rule.title)), suppress=EVENT_SUPPRESS, reset_on=None,
        ignore=None, tests=(), requires=(), source=source, specs=(spec, None, None),
    )
