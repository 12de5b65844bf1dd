"""`apiwatch rules test` and `apiwatch rules lint`: output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from apiwatch.cli import main

RULE = """
id: bf
title: Brute force
filter: {event.action: authn_login_fail}
group_by: [source.ip]
window: {type: leaky_bucket, capacity: 2, leak: 10s}
tests:
  - name: three quick failures fire
    events:
      - {repeat: 3, every: 1, event: {event.action: authn_login_fail, source.ip: 10.0.0.1}}
    alerts: EXPECTED
"""


def _events(path: Path) -> Path:
    lines = [json.dumps({"@timestamp": f"2026-01-01T00:00:0{i}.000000Z",
                         "event.action": "authn_login_fail", "source.ip": "203.0.113.7",
                         "event.id": f"e{i}"}) for i in range(4)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rules_test_shows_alerts_as_json(tmp_path: Path) -> None:
    """`rules test --json` lists the alerts the events raise and passes inline tests (exit 0)."""
    rule = tmp_path / "bf.yaml"
    rule.write_text(RULE.replace("EXPECTED", "1"))
    result = CliRunner().invoke(main, ["rules", "test", str(rule),
                                       str(_events(tmp_path / "e.jsonl")), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert [a["group"] for a in body["alerts"]] == [{"source.ip": "203.0.113.7"}]
    assert body["inline_tests"][0]["ok"] is True


def test_rules_test_exits_1_on_failing_inline_test(tmp_path: Path) -> None:
    """A rule whose inline expectation does not hold makes `rules test` exit 1."""
    rule = tmp_path / "bf.yaml"
    rule.write_text(RULE.replace("EXPECTED", "2"))
    result = CliRunner().invoke(main, ["rules", "test", str(rule),
                                       str(_events(tmp_path / "e.jsonl"))])
    assert result.exit_code == 1
    assert "FAIL bf: three quick failures fire" in result.output


def test_rules_lint(tmp_path: Path) -> None:
    """`rules lint` passes the catalogue and exits 1 on a broken file, naming the key."""
    assert CliRunner().invoke(main, ["rules", "lint"]).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(RULE.replace("leaky_bucket", "bucket").replace("EXPECTED", "1"))
    result = CliRunner().invoke(main, ["rules", "lint", str(bad)])
    assert result.exit_code == 1
    assert "key 'window'.type" in result.output


def test_rules_test_unreadable_rule_exits_2(tmp_path: Path) -> None:
    """A missing rule path is a usage error: exit 2 with a one-line reason."""
    result = CliRunner().invoke(main, ["rules", "test", str(tmp_path / "none.yaml"),
                                       str(_events(tmp_path / "e.jsonl"))])
    assert result.exit_code == 2
