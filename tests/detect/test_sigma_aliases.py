"""Sigma correlation field aliases (specification v2.1.0, "Field Name Aliases"): one group
joins events that carry the same value under different field names, per referenced rule."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from apiwatch.detect import Alert, Engine
from apiwatch.detect.rules import TEST_EPOCH
from apiwatch.detect.sigma import SigmaRuleError
from apiwatch.detect.sigma_load import parse_sigma_text
from apiwatch.events import format_timestamp

SPEC = "rules/sigma/sigma-correlation-rules-specification.md"
INTERNAL, REMOTE = "10.0.0.5", "198.51.100.7"


def spec_example(shared_data: Path) -> str:
    """The specification's aliases example as one collection: its two Sigma rules (given a
    title and logsource, which the example leaves out) and its correlation (titled)."""
    spec = (shared_data / SPEC).read_text()
    section = spec.split("#### Field Name Aliases Example")[1].split("\n## Example")[0]
    docs = []
    for block in re.findall(r"```yaml\n(.*?)```", section, re.S):
        if "correlation:" in block:
            docs.append(block.replace("title: —\nid: —\n", "title: Aliased\n"))
        else:
            name = re.search(r"name: (\S+)", block)
            assert name is not None
            docs.append(f"title: {name.group(1)}\nlogsource: {{category: webserver}}\n{block}")
    assert len(docs) == 3
    return "---\n".join(docs)


def run(text: str, events: Sequence[tuple[float, Mapping[str, Any]]]) -> list[Alert]:
    """The alerts of events at seconds after TEST_EPOCH."""
    engine = Engine(parse_sigma_text(text, "spec"), lateness=0)
    out = []
    for i, (t, fields) in enumerate(events):
        stamp = format_timestamp(round((TEST_EPOCH + t) * 1e9))
        out += engine.process({"@timestamp": stamp, "event.id": f"e{i}", **fields})
    return out


def error_500(t: float, internal: str, remote: str) -> tuple[float, dict[str, Any]]:
    """An `internal_error` event: the internal host is the destination."""
    return t, {"http.response.status_code": 500, "destination.ip": internal,
               "source.ip": remote}


def connection(t: float, source: str, destination: str) -> tuple[float, dict[str, Any]]:
    """A `new_network_connection` event from `source` to `destination`."""
    return t, {"event.category": "network", "event.type": "connection",
               "event.outcome": "success", "source.ip": source, "destination.ip": destination}


class TestSpecExample:
    def test_fires_when_the_addresses_match_across_field_names(self, shared_data: Path) -> None:
        """An internal error then, within 10 s, a connection from the internal host to the
        same remote host fire once, grouped by the alias names."""
        alerts = run(spec_example(shared_data),
                     [error_500(0, INTERNAL, REMOTE), connection(5, INTERNAL, REMOTE)])
        assert len(alerts) == 1
        assert alerts[0].group == {"internal_ip": INTERNAL, "remote_ip": REMOTE}
        assert alerts[0].event_ids == ["e0", "e1"]

    @pytest.mark.parametrize("events", [
        # Same addresses, but in the same fields: the connection goes the other way.
        [error_500(0, INTERNAL, REMOTE), connection(5, REMOTE, INTERNAL)],
        # Another remote host.
        [error_500(0, INTERNAL, REMOTE), connection(5, INTERNAL, "198.51.100.8")],
        # Too far apart for the 10 s timespan.
        [error_500(0, INTERNAL, REMOTE), connection(11, INTERNAL, REMOTE)],
        # Only one of the two rules.
        [error_500(0, INTERNAL, REMOTE), error_500(1, INTERNAL, REMOTE)],
    ])
    def test_stays_quiet_otherwise(self, shared_data: Path,
                                   events: list[tuple[float, dict[str, Any]]]) -> None:
        """Without the same values in the aliased fields within the timespan, nothing fires."""
        assert run(spec_example(shared_data), events) == []


LOGINS = """
title: login failed
name: failed
logsource: {category: authentication}
detection: {sel: {event.action: authn_login_fail}, condition: sel}
---
title: account locked
name: locked
logsource: {category: authentication}
detection: {sel: {event.action: authn_login_lock}, condition: sel}
---
title: Failures and lockouts per account
correlation:
  type: event_count
  rules: [failed, locked]
  group-by: [account]
  timespan: 10m
  condition: {gte: 3}
  aliases:
    account: {failed: user.name, locked: user.target.name}
"""


def test_event_count_counts_one_account_under_two_names() -> None:
    """An event_count over two rules counts failures (`user.name`) and lockouts
    (`user.target.name`) of one account together, and another account apart."""
    events = [(0, {"event.action": "authn_login_fail", "user.name": "bob"}),
              (10, {"event.action": "authn_login_fail", "user.name": "eve"}),
              (20, {"event.action": "authn_login_lock", "user.target.name": "bob",
                    "user.name": "admin"}),
              (30, {"event.action": "authn_login_fail", "user.name": "bob"})]
    alerts = run(LOGINS, events)
    assert [(a.group, a.count) for a in alerts] == [({"account": "bob"}, 3)]
    assert run(LOGINS, events[:3]) == []


@pytest.mark.parametrize(("aliases", "rules", "feature"), [
    ("{account: {failed: user.name, nowhere: user.target.name}}", "[failed, locked]",
     "names rule 'nowhere', which the correlation does not reference"),
    ("{account: {failed: user.name}}", "[failed, locked]",
     "alias 'account' names no field for Sigma rule 'account locked'"),
])
def test_unusable_aliases_are_refused(aliases: str, rules: str, feature: str) -> None:
    """An alias naming a rule the correlation does not reference, or lacking a field for one
    it does, is refused naming the correlation and the alias."""
    text = LOGINS.replace("  aliases:\n    account: {failed: user.name, locked: user.target.name}",
                          f"  aliases: {aliases}").replace("[failed, locked]", rules)
    with pytest.raises(SigmaRuleError) as info:
        parse_sigma_text(text, "c.yml")
    assert "'Failures and lockouts per account'" in str(info.value)
    assert feature in str(info.value)


def test_aliases_over_a_chain_are_refused() -> None:
    """Aliases on a correlation that references correlations are refused, not ignored."""
    text = LOGINS.replace("title: Failures and lockouts per account\n",
                          "title: Inner\nname: inner\n") + """---
title: Outer
correlation:
  type: temporal
  rules: [inner, locked]
  group-by: [who]
  timespan: 1h
  aliases:
    who: {inner: account, locked: user.target.name}
"""
    with pytest.raises(SigmaRuleError, match=r"'Outer'.*aliases on a correlation that "
                                             r"references correlations"):
        parse_sigma_text(text, "c.yml")
