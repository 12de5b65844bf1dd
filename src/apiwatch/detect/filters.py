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
            search = re.compile(str(spec)).search
        except re.error as exc:
            raise FilterError(f"{where}: invalid regex: {exc}") from None
        return lambda v: isinstance(v, str) and search(v) is not None
    if op == "cidr":
        return _in_networks(_networks(spec, where))
    if op == "gte":
        bound = _number(spec, where)
        return lambda v: isinstance(v, int | float) and v >= bound
    if op == "lte":
        bound = _number(spec, where)
        return lambda v: isinstance(v, int | float) and v <= bound
    raise FilterError(f"{where}: unknown operator {op!r}")


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


def _field(name: str, cond: Any, where: str) -> Predicate:
    """The predicate of one `field: condition` entry (`a|b`: the first field present)."""
    if not isinstance(cond, Mapping):
        cond = {"in": cond} if isinstance(cond, list) else {"equals": cond}
    if not cond:
        raise FilterError(f"{where}: empty condition")
    exists: bool | None = None
    tests: list[tuple[ValueTest, bool]] = []
    for op, spec in cond.items():
        key = f"{where}.{op}"
        if op == "exists":
            if not isinstance(spec, bool):
                raise FilterError(f"{key}: expected true or false, got {spec!r}")
            exists = spec
            continue
        negate = op.startswith("not_")
        tests.append((_operator(op[4:] if negate else op, spec, key), negate))

    def test_value(value: Any) -> bool:
        for test, negate in tests:
            hit = any(test(v) for v in value) if isinstance(value, list) else test(value)
            if hit == negate:
                return False
        return True

    get = _getter(name)
    plain = "|" not in name
    if exists is False:
        return lambda e: get(e) is None
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

    def many(e: Event) -> bool:
        value = get(e)
        if value is None:
            # An absent field fails a positive test and passes a purely negative one.
            return exists is not True and all(negate for _, negate in tests) and bool(tests)
        return test_value(value)

    return many


def _any(subs: tuple[Predicate, ...]) -> Predicate:
    return lambda e: any(p(e) for p in subs)


def _all(subs: tuple[Predicate, ...]) -> Predicate:
    return lambda e: all(p(e) for p in subs)


def _not(inner: Predicate) -> Predicate:
    return lambda e: not inner(e)


def compile_filter(spec: Any, where: str = "filter") -> Predicate:
    """Compile a filter mapping into a predicate; raises FilterError naming the bad key."""
    if spec is None:
        return lambda e: True
    if not isinstance(spec, Mapping):
        raise FilterError(f"{where}: expected a mapping, got {type(spec).__name__}")
    parts: list[Predicate] = []
    for key, value in spec.items():
        path = f"{where}.{key}"
        if key in ("any", "all"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{path}: expected a non-empty list of filters")
            subs = tuple(compile_filter(v, f"{path}[{i}]") for i, v in enumerate(value))
            parts.append(_any(subs) if key == "any" else _all(subs))
        elif key == "not":
            parts.append(_not(compile_filter(value, path)))
        else:
            parts.append(_field(str(key), value, path))
    if len(parts) == 1:
        return parts[0]
    conj = tuple(parts)

    def every(e: Event) -> bool:
        return all(p(e) for p in conj)

    return every


def filter_actions(spec: Any) -> frozenset[str] | None:
    """The `event.action` values a filter can match, or None if it does not restrict them.

    The engine indexes rules by these, so an event only visits rules that can match it.
    """
    if not isinstance(spec, Mapping):
        return None
    found: frozenset[str] | None = None
    cond = spec.get("event.action")
    if isinstance(cond, str):
        found = frozenset([cond])
    elif isinstance(cond, list):
        found = frozenset(str(x) for x in cond)
    elif isinstance(cond, Mapping) and set(cond) <= {"equals", "in"}:
        values = [cond["equals"]] if "equals" in cond else cond.get("in", [])
        found = frozenset(str(x) for x in values)
    if found is None and isinstance(spec.get("any"), list):
        subs = [filter_actions(s) for s in spec["any"]]
        if subs and all(s is not None for s in subs):
            found = frozenset().union(*(s for s in subs if s is not None))
    return found
