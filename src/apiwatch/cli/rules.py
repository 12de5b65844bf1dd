"""`apiwatch rules test|lint|list`: try detection rules before deploying them.

Rule files are apiwatch YAML or Sigma (told apart by their keys: `apiwatch.detect.sigma_load`).
`rules test RULE_OR_DIR EVENTS.jsonl` replays JSON-lines events through the rules and shows
the alerts that would fire, then runs each rule's inline `tests`; it exits 1 if any inline
expectation fails. A replay runs the time-driven rules (silent sources, Sigma windows judged
when they end) as the collector's tick does: every minute of event time, then on to `--flush`
after the last event, so that windows still open at the end of the file are judged.
`rules lint [PATHS]` loads rule files (the built-in catalogue when no path is given) and
reports the first error of each file, and which rules need an input the config lacks (an ASN
database); `rules list` shows each rule and whether it is active with this config.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
import orjson

from apiwatch.cli import main
from apiwatch.cli._collector import load
from apiwatch.cli._exit import FINDING, fail
from apiwatch.config import CONFIG_NAME, Config
from apiwatch.detect import Alert, Engine, Rule, RuleError, load_catalogue
from apiwatch.detect.history import Absence
from apiwatch.detect.rules import parse_duration
from apiwatch.detect.sigma_load import load_any
from apiwatch.enrich import unmet_needs
from apiwatch.events import Event, parse_timestamp

#: Event time between two runs of the time-driven rules in a replay (the collector's tick).
TICK = 60.0
#: Ticks run one by one across a gap in event time; a longer gap is crossed in one step.
MAX_TICKS = 10_080  # a week


@main.group("rules")
def rules_group() -> None:
    """Test, lint and list detection rules."""


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


def auto_flush(rules: Iterable[Rule]) -> float:
    """How long after the last event a replay still runs the clock: the longest horizon of
    the rules judged by time (0 if none is)."""
    return max((r.window.horizon for r in rules if isinstance(r.window, Absence)), default=0.0)


def _event_time(event: Event) -> float | None:
    stamp = event.get("@timestamp")
    try:
        return parse_timestamp(stamp).timestamp() if isinstance(stamp, str) else None
    except ValueError:
        return None


def _run_clock(engine: Engine, tick: float, until: float) -> tuple[list[Alert], float]:
    """Run the time-driven rules at every tick up to `until` (a gap longer than MAX_TICKS
    ticks is crossed in one step); the alerts and the next tick."""
    alerts: list[Alert] = []
    steps = 0
    while tick <= until:
        if steps == MAX_TICKS:
            alerts += engine.advance(until)
            return alerts, until + TICK
        alerts += engine.advance(tick)
        tick += TICK
        steps += 1
    return alerts, tick


def replay(engine: Engine, events: Iterable[Event], flush: float) -> list[Alert]:
    """The alerts of `events`, with the time-driven rules run every TICK of event time (before
    the event that passes the tick, as the collector's tick would have run) and on for
    `flush` seconds after the newest event."""
    alerts: list[Alert] = []
    tick: float | None = None
    newest: float | None = None
    for event in events:
        ts = _event_time(event)
        if ts is not None:
            newest = ts if newest is None else max(newest, ts)
            if tick is None:
                tick = ts + TICK
            elif ts >= tick:
                raised, tick = _run_clock(engine, tick, ts)
                alerts += raised
        alerts += engine.process(event)
    if newest is not None and tick is not None and flush > 0:
        alerts += _run_clock(engine, tick, newest + flush)[0]
        alerts += engine.advance(newest + flush)
    return alerts


def _inline_results(rules: list[Rule]) -> list[dict[str, Any]]:
    """Each inline test of each rule, run alone through a fresh engine (flushed as by
    default: an expectation written in a rule does not depend on `--flush`)."""
    results = []
    for rule in rules:
        for test in rule.tests:
            engine = Engine([rule])
            got = len(replay(engine, (dict(e) for e in test.events), auto_flush([rule])))
            results.append({"rule": rule.key, "test": test.name, "expected": test.alerts,
                            "got": got, "ok": got == test.alerts})
    return results


@rules_group.command("test")
@click.argument("rules_path", metavar="RULE_OR_DIR", type=click.Path(path_type=Path))
@click.argument("events_path", metavar="EVENTS.jsonl", type=click.Path(path_type=Path))
@click.option("--lateness", default=60.0, show_default=True, help="Allowed lateness, seconds.")
@click.option("--flush", "flush_text", default="auto", show_default=True,
              help="Event time the clock runs on after the last event (30m, 2h, 0 for none); "
                   "auto: the longest window of the time-driven rules.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def test_command(rules_path: Path, events_path: Path, lateness: float, flush_text: str,
                 as_json: bool) -> None:
    """Show what RULE_OR_DIR would raise on EVENTS.jsonl; exit 1 if an inline test fails."""
    try:
        rules = load_any(rules_path)
        flush = None if flush_text == "auto" else parse_duration(flush_text, "--flush")
    except RuleError as exc:
        fail(str(exc))
    engine = Engine(rules, lateness=lateness)
    found = replay(engine, _read_events(events_path),
                   auto_flush(rules) if flush is None else flush)
    alerts = [a.to_json() for a in found]
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


def _needs(rules: list[Rule], config: Config) -> dict[str, list[str]]:
    """What each rule needs that the config does not provide (rules lacking nothing left out)."""
    out = {}
    for rule in rules:
        lacks = unmet_needs(rule.requires, asn_db=config.enrich.asn_db,
                            geo_db=config.enrich.geo_db)
        if lacks:
            out[rule.key] = lacks
    return out


def _load(path: Path | None) -> list[Rule]:
    return load_catalogue() if path is None else load_any(path)


_CONFIG = click.option("--config", "config_path",
                       type=click.Path(dir_okay=False, path_type=Path),
                       help=f"The config file, for the inputs it provides (default "
                            f"./{CONFIG_NAME} if present).")


@rules_group.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@_CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def lint_command(paths: tuple[Path, ...], config_path: Path | None, as_json: bool) -> None:
    """Check rule files (default: the built-in catalogue); exit 1 if any is invalid. A rule
    needing an input the config lacks is valid but noted: it stays quiet."""
    config = load(config_path, None)
    files: list[Path | None] = [] if paths else [None]
    for path in paths:
        if path.is_dir():
            files += sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        else:
            files.append(path)
    report: list[dict[str, Any]] = []
    for file in files:
        name = "catalogue" if file is None else str(file)
        try:
            rules = _load(file)
        except RuleError as exc:
            report.append({"path": name, "rules": 0, "error": str(exc), "needs": {}})
            continue
        report.append({"path": name, "rules": len(rules), "error": None,
                       "needs": _needs(rules, config)})
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for item in report:
            status = item["error"] or f"ok, {item['rules']} rule(s)"
            click.echo(f"{item['path']}: {status}")
            for rule, lacks in item["needs"].items():
                click.echo(f"  {rule}: {'; '.join(lacks)} (loaded, quiet)")
    if any(item["error"] for item in report):
        raise SystemExit(FINDING)


@rules_group.command("list")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@_CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def list_command(path: Path | None, config_path: Path | None, as_json: bool) -> None:
    """List the rules of PATH (default: the built-in catalogue) and whether each is active
    with this config, or what it needs."""
    config = load(config_path, None)
    try:
        rules = _load(path)
    except RuleError as exc:
        fail(str(exc))
    needs = _needs(rules, config)
    rows: list[dict[str, Any]] = [
        {"id": r.key, "severity": r.severity, "title": r.title, "source": r.source,
         "active": r.key not in needs, "needs": needs.get(r.key, [])} for r in rules]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        status = "active" if row["active"] else "; ".join(row["needs"])
        click.echo(f"{row['id']:34} {row['severity']:8} {row['title']} [{status}]")
