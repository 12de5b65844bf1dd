"""The YAML rule format: loading, clear errors naming file and key, filters and overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from detect_traffic import START, event

from apiwatch.detect import (
    Engine,
    RuleError,
    compile_filter,
    load_catalogue,
    load_rules,
    parse_rules_text,
)

GOOD = """
id: spray
title: Spray
severity: high
filter: {event.action: authn_login_fail}
group_by: [source.ip]
window: {type: distinct, fields: {user.name: 3}, within: 5m}
"""


def test_catalogue_loads_with_documentation() -> None:
    """Every shipped rule loads, has a title and description, and a unique id."""
    rules = load_catalogue()
    assert len(rules) >= 25
    assert all(r.title != r.id and r.description for r in rules)


def test_catalogue_rules_are_documented() -> None:
    """docs/detection.md has a section for every catalogue rule."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "detection.md").read_text()
    missing = [r.id for r in load_catalogue() if f"### `{r.id}`" not in doc]
    assert missing == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("distinct", "histogram", 1), "key 'window'.type"),
        (GOOD.replace("within: 5m", "within: soon"), "window'.within: expected a duration"),
        (GOOD.replace("severity: high", "severity: dire"), "key 'severity'"),
        (GOOD + "colour: red\n", "unknown key 'colour'"),
        (GOOD.replace("id: spray", "id: Spray"), "key 'id'"),
        (GOOD.replace("{event.action: authn_login_fail}", "{url.path: {regex: '('}}"),
         "filter'.url.path.regex: invalid regex"),
        (GOOD.replace("{event.action: authn_login_fail}", "{source.ip: {cidr: [nope]}}"),
         "filter'.source.ip.cidr"),
        (GOOD.replace("fields: {user.name: 3}", "fields: {user.name: 0}"),
         "fields.user.name: expected an integer >= 1"),
        ("id: [unclosed", "invalid YAML"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    """A bad rule file is refused with a message naming the file and the key at fault."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RuleError) as info:
        load_rules(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    """Two rules with one id in a directory are refused, naming both files."""
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    with pytest.raises(RuleError, match="also defined in"):
        load_rules(tmp_path)


@pytest.mark.parametrize(
    ("spec", "hit", "miss"),
    [
        ({"url.path": {"prefix": "/api/"}}, {"url.path": "/api/x"}, {"url.path": "/x"}),
        ({"source.ip": {"cidr": ["10.0.0.0/8"]}}, {"source.ip": "10.1.2.3"},
         {"source.ip": "11.0.0.1"}),
        ({"user.name": {"exists": True}}, {"user.name": "a"}, {}),
        ({"not": {"user.name": "root"}}, {"user.name": "bob"}, {"user.name": "root"}),
        ({"http.response.status_code": {"gte": 500}}, {"http.response.status_code": 503},
         {"http.response.status_code": 404}),
        ({"event.type": "denied"}, {"event.type": ["access", "denied"]},
         {"event.type": ["access"]}),
        ({"any": [{"a": 1}, {"b": 2}]}, {"b": 2}, {"a": 2}),
        ({"url.original|url.path": {"regex": "etc/passwd"}}, {"url.path": "/etc/passwd"},
         {"url.original": "/x", "url.path": "/etc/passwd"}),
        ({"source.ip": {"not_cidr": ["10.0.0.0/8"]}}, {}, {"source.ip": "10.0.0.1"}),
    ],
)
def test_filter_operators(spec: dict[str, object], hit: dict[str, object],
                          miss: dict[str, object]) -> None:
    """Each filter operator matches what it says and nothing else."""
    predicate = compile_filter(spec)
    assert predicate(hit)
    assert not predicate(miss)


def test_tenant_override_changes_threshold_for_that_tenant_only() -> None:
    """A per-tenant override applies to that tenant's events; others keep the default."""
    text = GOOD + "overrides: {big: {window: {fields: {user.name: 10}}}}\n"
    rules = parse_rules_text(text, "t")
    assert [r.key for r in rules] == ["spray", "spray@big"]
    for tenant, expected in (("small", 1), ("big", 0)):
        engine = Engine(rules)
        alerts = [a for i in range(5) for a in engine.process(event(
            "authn_login_fail", START + i,
            {"source.ip": "10.0.0.1", "user.name": f"u{i}", "apiwatch.tenant": tenant}))]
        assert len(alerts) == expected


def test_allowlist_ignores_matching_events() -> None:
    """Events matching the allowlist never count towards the rule."""
    rules = parse_rules_text(GOOD + "allowlist: {source.ip: {cidr: [10.0.0.0/8]}}\n", "t")
    engine = Engine(rules)
    alerts = [a for i in range(5) for a in engine.process(event(
        "authn_login_fail", START + i, {"source.ip": "10.0.0.1", "user.name": f"u{i}"}))]
    assert alerts == []


def test_inline_tests_of_catalogue_pass() -> None:
    """The inline test expectations shipped in the catalogue hold."""
    for rule in load_catalogue():
        for test in rule.tests:
            engine = Engine([rule])
            got = sum(len(engine.process(dict(e))) for e in test.events)
            assert got == test.alerts, (rule.id, test.name)
