"""`apiwatch demo`: the whole product in one command, with no config.

Starts a collector on a fresh temporary data directory, an instrumented FastAPI shop and its
traffic (`apiwatch.demo`), prints the dashboard URL and a fresh admin login, then streams the
alerts as they fire until Ctrl-C or `--duration` seconds. Everything is deleted on exit.
`--speed` compresses the scenario's times (`apiwatch.demo.traffic`); `--duration` stays in
wall-clock seconds.
"""

from __future__ import annotations

import time
from typing import Any

import click
from rich.console import Console

from apiwatch.cli import main
from apiwatch.cli._exit import fail
from apiwatch.errors import ApiwatchError

#: Seconds between two looks for new alerts.
POLL_SECONDS = 0.5
_STYLES = {"critical": "bold white on red", "high": "bold red", "medium": "yellow",
           "low": "cyan"}


def _show(console: Console, alert: dict[str, Any]) -> None:
    group = ", ".join(f"{k}={v}" for k, v in alert["group"].items() if v is not None)
    style = _STYLES.get(alert["severity"], "")
    console.print(f"[{style}]{alert['severity'].upper():8}[/] {alert['rule']}: "
                  f"{alert['title']} [dim]{group}[/]", highlight=False)


@main.command()
@click.option("--attack-after", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds of normal traffic before the attacks start (scenario time).")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True,
              help="Compress the scenario's time by this factor (2 shows the whole story "
                   "in under two minutes).")
@click.option("--duration", type=click.FloatRange(min=0), default=None,
              help="Stop after this many seconds (default: run until Ctrl-C).")
def demo(attack_after: float, speed: float, duration: float | None) -> None:
    """Run a collector, an instrumented shop API and attacks on it; stream the alerts."""
    try:
        from apiwatch.demo.runner import ADMIN, Demo  # noqa: PLC0415 - imports FastAPI
    except ImportError as exc:
        fail(f"the demo needs {exc.name or 'FastAPI'}: pip install 'apiwatch[demo]'")

    console = Console(highlight=False)
    run = Demo(attack_after, speed, on_step=lambda text: console.print(f"[bold]» {text}[/]"))
    try:
        run.start()
    except (ApiwatchError, OSError) as exc:
        fail(f"the demo could not start: {exc}")
    shown: set[str] = set()
    try:
        console.print(f"dashboard: [link]{run.dashboard_url}[/]  login: {ADMIN} / "
                      f"{run.password}", soft_wrap=True)
        console.print(f"normal customers are shopping; attacks start in "
                      f"{run.warm_up_seconds:.0f} s and are over after {run.story_seconds:.0f} s. "
                      "Ctrl-C stops.")
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            for alert in run.alerts():
                if alert["id"] not in shown:
                    shown.add(alert["id"])
                    _show(console, alert)
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping…")
        run.stop()
    console.print(f"{len(shown)} alerts; the demo's data directory is deleted.")
