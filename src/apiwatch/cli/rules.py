"""`apiwatch rules test` and `apiwatch rules lint`: try detection rules before deploying them.

Rule files are apiwatch YAML or Sigma (told apart by their keys: `apiwatch.detect.sigma_load`).
`rules test RULE_OR_DIR EVENTS.jsonl` replays JSON-lines events through the rules and shows
the alerts that would fire, then runs each rule's inline `tests`; it exits 1 if any inline
expectation fails. `rules lint [PATHS]` loads rule files (the built-in catalogue when no path
is given) and reports the first error of each file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import orjson

from apiwatch.cli import main
from apiwatch.cli._exit import FINDING, fail
from apiwatch.detect import Engine, Rule, RuleError, load_catalogue
from apiwatch.detect.sigma_load import load_any


@main.group("rules")
def rules_group() -> None:
    """Test and lint detection rules."""


def _read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    try:
        with path.open("rb") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    fail(f"{path}: line {number}: invalid JSON: {exc}")
                if not isinstance(event, dict):
                    fail(f"{path}: line {number}: expected a JSON object")
                events.append(event)
    except OSError as exc:
        fail(f"{path}: cannot read: {exc.strerror}")
    return events


def _inline_results(rules: list[Rule]) -> list[dict[str, Any]]:
    """Each inline test of each rule, run alone through a fresh engine."""
    results = []
    for rule in rules:
        for test in rule.tests:
            engine = Engine([rule])
            got = sum(len(engine.process(dict(e))) for e in test.events)
            results.append({"rule": rule.key, "test": test.name, "expected": test.alerts,
                            "got": got, "ok": got == test.alerts})
    return results


@rules_group.command("test")
@click.argument("rules_path", metavar="RULE_OR_DIR", type=click.Path(path_type=Path))
@click.argument("events_path", metavar="EVENTS.jsonl", type=click.Path(path_type=Path))
@click.option("--lateness", default=60.0, show_default=True, help="Allowed lateness, seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def test_command(rules_path: Path, events_path: Path, lateness: float, as_json: bool) -> None:
    """Show what RULE_OR_DIR would raise on EVENTS.jsonl; exit 1 if an inline test fails."""
    try:
        rules = load_any(rules_path)
    except RuleError as exc:
        fail(str(exc))
    engine = Engine(rules, lateness=lateness)
    alerts = [a.to_json() for e in _read_events(events_path) for a in engine.process(e)]
    inline = _inline_results(rules)
    failed = [r for r in inline if not r["ok"]]
    if as_json:
        click.echo(json.dumps({"alerts": alerts, "late": engine.stats.late,
                               "inline_tests": inline}, indent=2))
    else:
        for alert in alerts:
            group = " ".join(f"{k}={v}" for k, v in alert["group"].items())
            click.echo(f"{alert['first_seen']} {alert['severity']:8} {alert['rule']} {group} "
                       f"({alert['reason']})")
        click.echo(f"{len(alerts)} alert(s) from {engine.stats.events} event(s)"
                   f"{f', {engine.stats.late} too late' if engine.stats.late else ''}")
        for result in inline:
            mark = "ok  " if result["ok"] else "FAIL"
            click.echo(f"{mark} {result['rule']}: {result['test']} "
                       f"(expected {result['expected']}, got {result['got']})")
    if failed:
        raise SystemExit(FINDING)


@rules_group.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def lint_command(paths: tuple[Path, ...], as_json: bool) -> None:
    """Check rule files (default: the built-in catalogue); exit 1 if any is invalid."""
    report: list[dict[str, Any]] = []
    if not paths:
        try:
            report.append({"path": "catalogue", "rules": len(load_catalogue()), "error": None})
        except RuleError as exc:
            report.append({"path": "catalogue", "rules": 0, "error": str(exc)})
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        else:
            files.append(path)
    for file in files:
        try:
            report.append({"path": str(file), "rules": len(load_any(file)), "error": None})
        except RuleError as exc:
            report.append({"path": str(file), "rules": 0, "error": str(exc)})
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for item in report:
            status = item["error"] or f"ok, {item['rules']} rule(s)"
            click.echo(f"{item['path']}: {status}")
    if any(item["error"] for item in report):
        raise SystemExit(FINDING)
