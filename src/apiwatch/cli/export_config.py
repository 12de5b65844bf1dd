"""`apiwatch export-config`: Prometheus rules, a Grafana dashboard and log forwarder configs."""

from __future__ import annotations

from pathlib import Path

import click

from apiwatch.cli import main
from apiwatch.cli._exit import fail
from apiwatch.monitor.artifacts import artifacts


@main.command("export-config")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write the files into (created if absent).")
@click.option("--syslog", default="127.0.0.1:6514", show_default=True,
              help="HOST:PORT of apiwatch's syslog receiver, for the forwarder configs.")
def export_config(out: Path, syslog: str) -> None:
    """Write monitoring artifacts for Prometheus, Grafana, Vector and Fluent Bit."""
    if ":" not in syslog:
        fail(f"--syslog {syslog!r} is not HOST:PORT")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in artifacts(syslog).items():
            (out / name).write_text(text, encoding="utf-8")
            click.echo(out / name)
    except OSError as exc:
        fail(f"cannot write to {out}: {exc.strerror}")
