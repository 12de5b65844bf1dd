"""The rule filter: which events a rule looks at, compiled once into a plain predicate.

A filter is a mapping; every entry must hold (AND). An entry is a field name with a condition,
or one of the combinators `any` (a list of filters, one must hold), `all` (a list, all must
hold) and `not` (a filter that must not hold). A condition is a scalar (equals), a list (in),
or a mapping of operators, all of which must hold:

    event.action: [authn_login_fail, authn_token_invalid]
    http.response.status_code: {in: [400, 403, 404]}
    url.path: {prefix: /api/, not_regex: '\\.(css|js|png)$'}
    source.ip: {not_cidr: [10.0.0.0/8]}
    user.name: {exists: true}

Operators: `equals`, `in`, `prefix`, `suffix`, `regex` (Python `re.search`), `cidr` (the
address is in one of the networks), `exists`, `gte`, `lte`, and `not_<op>` for each. A field
holding a list (`event.type`, `apiwatch.object.ids`) matches if any element does; a field
name `a|b` reads the first of those fields present.

Speed: a filter's entries are tested cheapest first (presence and equality before ranges,
prefixes, networks and regular expressions); a regex test remembers its last answer, so two
rules testing the same pattern on the same event's value search once. `residual` partially
evaluates a filter on some fields' known values, so the engine can drop the tests a whole class
of events (one `event.action`, one status code...) is known to pass or fail.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from apiwatch.errors import ApiwatchError
from apiwatch.events import Event

Predicate = Callable[[Event], bool]
ValueTest = Callable[[Any], bool]


class FilterError(ApiwatchError):
    """A filter is malformed; the message names the key that is wrong."""


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=65536)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _in_networks(networks: tuple[Network, ...]) -> ValueTest:
    def test(value: Any) -> bool:
        address = _address(value) if isinstance(value, str) else None
        return address is not None and any(address in net for net in networks)

    return test


def _networks(spec: Any, where: str) -> tuple[Network, ...]:
    items = spec if isinstance(spec, list) else [spec]
    try:
        return tuple(ipaddress.ip_network(str(x), strict=False) for x in items)
    except ValueError as exc:
        raise FilterError(f"{where}: {exc}") from None


def _number(spec: Any, where: str) -> float:
    if isinstance(spec, bool) or not isinstance(spec, int | float):
        raise FilterError(f"{where}: expected a number, got {spec!r}")
    return float(spec)


def _operator(op: str, spec: Any, where: str) -> ValueTest:
    """The test one operator applies to a present value."""
    if op == "equals":
        return lambda v: bool(v == spec)
    if op == "in":
        if not isinstance(spec, list):
            raise FilterError(f"{where}: 'in' expects a list, got {spec!r}")
        allowed = frozenset(spec)
        return lambda v: v in allowed
    if op in ("prefix", "suffix"):
        items = tuple(str(x) for x in (spec if isinstance(spec, list) else [spec]))
        if op == "prefix":
            return lambda v: isinstance(v, str) and v.startswith(items)
        return lambda v: isinstance(v, str) and v.endswith(items)
    if op == "regex":
        try:
            return _regex_test(str(spec))
        except re.error as exc:
            raise FilterError(f"{where}: invalid regex: {exc}") from None
    if op == "cidr":
        return _in_networks(_networks(spec, where))
    if op == "gte":
        bound = _number(spec, where)
        return lambda v: isinstance(v, int | float) and v >= bound
    if op == "lte":
        bound = _number(spec, where)
        return lambda v: isinstance(v, int | float) and v <= bound
    raise FilterError(f"{where}: unknown operator {op!r}")


@lru_cache(maxsize=1024)
def _regex_test(pattern: str) -> ValueTest:
    """`re.search` with a one-entry memo keyed by the value's identity: the rules that test the
    same pattern on one event's field share one search (the memo holds its value, so identity
    cannot be reused; it is one tuple, replaced whole, so threads never see half of it)."""
    search = re.compile(pattern).search
    memo: list[tuple[Any, bool]] = [(None, False)]

    def test(value: Any) -> bool:
        last = memo[0]
        if value is last[0]:
            return last[1]
        hit = isinstance(value, str) and search(value) is not None
        memo[0] = (value, hit)
        return hit

    return test


#: Relative cost of an operator, to test cheap and usually decisive entries first.
_COST = {"exists": 1, "equals": 2, "in": 2, "gte": 3, "lte": 3, "prefix": 4, "suffix": 4,
         "cidr": 6, "regex": 10}


def _getter(name: str) -> Callable[[Event], Any]:
    """Reads `name`, or for `a|b` the first of the alternatives present."""
    names = tuple(n.strip() for n in name.split("|"))
    if len(names) == 1:
        return lambda e: e.get(name)

    def first(e: Event) -> Any:
        for n in names:
            value = e.get(n)
            if value is not None:
                return value
        return None

    return first


def _field(name: str, cond: Any, where: str) -> tuple[Predicate, int]:
    """The predicate of one `field: condition` entry (`a|b`: the first field present), and its
    cost."""
    if not isinstance(cond, Mapping):
        cond = {"in": cond} if isinstance(cond, list) else {"equals": cond}
    if not cond:
        raise FilterError(f"{where}: empty condition")
    exists: bool | None = None
    tests: list[tuple[ValueTest, bool]] = []
    cost = 1 if "|" in name else 0
    for op, spec in cond.items():
        key = f"{where}.{op}"
        if op == "exists":
            if not isinstance(spec, bool):
                raise FilterError(f"{key}: expected true or false, got {spec!r}")
            exists = spec
            cost += 1
            continue
        negate = op.startswith("not_")
        base = op[4:] if negate else op
        tests.append((_operator(base, spec, key), negate))
        cost += _COST[base]
    return _field_predicate(name, exists, tests), cost


def _field_predicate(name: str, exists: bool | None,
                     tests: list[tuple[ValueTest, bool]]) -> Predicate:
    get = _getter(name)
    plain = "|" not in name
    if exists is False:
        return lambda e: get(e) is None
    if not tests:  # `exists: true` alone
        return (lambda e: e.get(name) is not None) if plain else (lambda e: get(e) is not None)
    if len(tests) == 1 and not tests[0][1]:  # the common case: one positive operator
        single = tests[0][0]

        def one(e: Event) -> bool:
            value = e.get(name) if plain else get(e)
            if value is None:
                return False
            if isinstance(value, list):
                return any(single(v) for v in value)
            return single(value)

        return one

    def test_value(value: Any) -> bool:
        for test, negate in tests:
            hit = any(test(v) for v in value) if isinstance(value, list) else test(value)
            if hit == negate:
                return False
        return True

    def many(e: Event) -> bool:
        value = get(e)
        if value is None:
            # An absent field fails a positive test and passes a purely negative one.
            return exists is not True and all(negate for _, negate in tests)
        return test_value(value)

    return many


def _any(subs: tuple[Predicate, ...]) -> Predicate:
    def either(e: Event) -> bool:
        for p in subs:  # noqa: SIM110 - a loop, not any(): no generator on the hot path
            if p(e):
                return True
        return False

    return either


def _all(subs: tuple[Predicate, ...]) -> Predicate:
    if len(subs) == 1:
        return subs[0]
    if len(subs) == 2:
        first, second = subs
        return lambda e: first(e) and second(e)

    def every(e: Event) -> bool:
        for p in subs:  # noqa: SIM110 - a loop, not all(): no generator on the hot path
            if not p(e):
                return False
        return True

    return every


def _not(inner: Predicate) -> Predicate:
    return lambda e: not inner(e)


def _always(e: Event) -> bool:
    return True


def _compile(spec: Any, where: str) -> tuple[Predicate, int]:
    """The predicate of a filter mapping and its cost; entries are tested cheapest first."""
    if spec is None:
        return _always, 0
    if not isinstance(spec, Mapping):
        raise FilterError(f"{where}: expected a mapping, got {type(spec).__name__}")
    parts: list[tuple[Predicate, int]] = []
    for key, value in spec.items():
        path = f"{where}.{key}"
        if key in ("any", "all"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{path}: expected a non-empty list of filters")
            subs = sorted((_compile(v, f"{path}[{i}]") for i, v in enumerate(value)),
                          key=lambda sub: sub[1])
            preds = tuple(p for p, _ in subs)
            parts.append((_any(preds) if key == "any" else _all(preds), sum(c for _, c in subs)))
        elif key == "not":
            inner, cost = _compile(value, path)
            parts.append((_not(inner), cost))
        else:
            parts.append(_field(str(key), value, path))
    if not parts:
        return _always, 0
    # Every entry is a pure test, so their order changes only the cost, never the answer.
    parts.sort(key=lambda part: part[1])
    return _all(tuple(p for p, _ in parts)), sum(c for _, c in parts)


def compile_filter(spec: Any, where: str = "filter") -> Predicate:
    """Compile a filter mapping into a predicate; raises FilterError naming the bad key."""
    return _compile(spec, where)[0]


def cost_of(spec: Any) -> int:
    """The relative cost of testing a (valid) filter: cheaper tests are made first."""
    return _compile(spec, "filter")[1]


def _names(key: Any) -> list[str]:
    return [n.strip() for n in str(key).split("|")]


def filter_fields(spec: Any) -> frozenset[str]:
    """The field names a (valid) filter reads."""
    if not isinstance(spec, Mapping):
        return frozenset()
    out: set[str] = set()
    for key, value in spec.items():
        if key in ("any", "all"):
            for sub in value:
                out |= filter_fields(sub)
        elif key == "not":
            out |= filter_fields(value)
        else:
            out.update(_names(key))
    return frozenset(out)


def residual(spec: Any, known: Mapping[str, Any]) -> Any:
    """A (valid) filter partially evaluated for events whose fields in `known` have those
    values (None: absent): True if it holds for every such event, False if for none, else the
    filter of the entries still to test."""
    if spec is None:
        return True
    out: dict[Any, Any] = {}
    for key, value in spec.items():
        if key in ("any", "all"):
            subs = [residual(v, known) for v in value]
            decided = key == "any"  # the outcome that decides the whole `any` / `all`
            if any(s is decided for s in subs):
                if decided:
                    continue
                return False
            rest = [s for s in subs if s is not (not decided)]
            if rest:
                out[key] = rest
            elif decided:
                return False
        elif key == "not":
            sub = residual(value, known)
            if sub is True:
                return False
            if sub is not False:
                out[key] = sub
        else:
            names = _names(key)
            if not all(n in known for n in names):
                out[key] = value
            elif not _field(str(key), value, "filter")[0]({n: known[n] for n in names}):
                return False
    return out or True
