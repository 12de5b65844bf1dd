"""`requires:` in apiwatch's rule format: a rule needing a field that only an optional input
provides stays loaded and sees only the events that carry it."""

from __future__ import annotations

import pytest

from apiwatch.detect import Engine, RuleError, parse_rules_text
from apiwatch.detect.rules import expand_test_events

RULE = """
id: key_two_networks
filter: {event.action: http_request}
group_by: [apiwatch.api_key.id]
window: {type: count, threshold: 2, within: 5m}
requires: REQUIRES
"""


def _alerts(requires: str, with_asn: bool) -> int:
    engine = Engine(parse_rules_text(RULE.replace("REQUIRES", requires), "r.yaml"))
    extra = {"source.as.number": 64500} if with_asn else {}
    events = expand_test_events([{"repeat": 2, "every": 10, "event": {
        "event.action": "http_request", "apiwatch.api_key.id": "k", **extra}}], "test")
    return sum(len(engine.process(e)) for e in events)


def test_a_rule_sees_only_events_with_the_fields_it_requires() -> None:
    """Without the required field the rule is quiet; with it the rule fires as usual."""
    assert _alerts("[source.as.number]", with_asn=False) == 0
    assert _alerts("[source.as.number]", with_asn=True) == 1


def test_requires_is_kept_on_the_rule() -> None:
    """The loaded rule lists what it requires (for `rules lint` and `rules list`)."""
    rule = parse_rules_text(RULE.replace("REQUIRES", "[source.as.number]"), "r.yaml")[0]
    assert rule.requires == ("source.as.number",)


@pytest.mark.parametrize("bad", ["source.as.number", "[a|b]", "[1]"])
def test_requires_must_list_field_names(bad: str) -> None:
    """`requires` is a list of plain field names; anything else names the rule and key."""
    with pytest.raises(RuleError, match=r"r.yaml: rule 'key_two_networks'.*'requires'"):
        parse_rules_text(RULE.replace("REQUIRES", bad), "r.yaml")
