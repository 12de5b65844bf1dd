"""`apiwatch alerts`: list alerts; `apiwatch alerts ack|resolve|comment ID`: work them.

Reads and writes `<data>/alerts.sqlite3` directly, so it works beside a running collector
(SQLite WAL); the collector's ledger is not opened. A change is kept in the alert's history
with `cli:<local user>` as actor.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from apiwatch.alerts import FILE_NAME, STATUSES, LifecycleError, Repository
from apiwatch.alerts.lifecycle import Action
from apiwatch.cli import main
from apiwatch.cli._collector import data_options, load
from apiwatch.cli._exit import fail
from apiwatch.detect import SEVERITIES


def _repository(config_path: Path | None, data: Path | None) -> Repository | None:
    """The data directory's alerts database; None if no alert was ever stored there."""
    path = load(config_path, data).data_dir / FILE_NAME
    return Repository(path) if path.is_file() else None


def _show(alerts: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        for alert in alerts:
            click.echo(json.dumps(alert, ensure_ascii=False))
        return
    table = Table(pad_edge=False)
    for heading in ("id", "severity", "status", "rule", "group", "count", "suppressed",
                    "first seen", "last seen"):
        table.add_column(heading, overflow="fold")
    for a in alerts:
        group = " ".join(f"{k}={v}" for k, v in sorted(a["group"].items()))
        cells = (a["id"], a["severity"], a["status"], a["rule"], group, str(a["count"]),
                 str(a["suppressed"]), a["first_seen"], a["last_seen"])
        table.add_row(*(escape(c) for c in cells))
    width = None if sys.stdout.isatty() else 1000
    Console(soft_wrap=False, width=width).print(table)


@main.group(invoke_without_command=True)
@click.option("--status", type=click.Choice(STATUSES), help="Only alerts with this status.")
@click.option("--severity", type=click.Choice(SEVERITIES), help="Only this severity.")
@click.option("--rule", help="Only alerts of this rule id.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@data_options
@click.pass_context
def alerts(ctx: click.Context, *, status: str | None, severity: str | None, rule: str | None,
           limit: int, as_json: bool, data: Path | None, config_path: Path | None) -> None:
    """List alerts, newest first (or work one: ack, resolve, comment)."""
    ctx.obj = (config_path, data)
    if ctx.invoked_subcommand is not None:
        return
    repository = _repository(config_path, data)
    if repository is None:
        _show([], as_json=as_json)
        return
    try:
        found = repository.select(status=status, severity=severity, rule=rule, limit=limit)
    finally:
        repository.close()
    _show(found, as_json=as_json)


def _change(ctx: click.Context, action: Action, alert_id: str, *, comment: str,
            data: Path | None, config_path: Path | None, as_json: bool) -> None:
    outer_config, outer_data = ctx.obj
    repository = _repository(config_path or outer_config, data or outer_data)
    if repository is None:
        fail(f"no alert {alert_id!r}: no alerts are stored there")
    try:
        alert = repository.transition(alert_id, action, f"cli:{getpass.getuser()}", comment)
    except LifecycleError as exc:
        fail(str(exc))
    finally:
        repository.close()
    _show([alert], as_json=as_json)


def _verb(action: Action, summary: str) -> None:
    @alerts.command(name=action, help=summary)
    @click.argument("alert_id")
    @click.option("--comment", "-m", default="", help="Why (kept in the alert's history).")
    @click.option("--json", "as_json", is_flag=True, help="Print the alert as JSON.")
    @data_options
    @click.pass_context
    def command(ctx: click.Context, *, alert_id: str, comment: str, as_json: bool,
                data: Path | None, config_path: Path | None) -> None:
        _change(ctx, action, alert_id, comment=comment, data=data, config_path=config_path,
                as_json=as_json)


_verb("ack", "Acknowledge an open alert: someone is on it.")
_verb("resolve", "Resolve an open or acknowledged alert.")
_verb("comment", "Add a comment to an alert's history.")
