"""What the verbs that read or write stored events share: `--data`/`--config`, opening the
data directory, a progress bar on a terminal, and recording every read as an event.

These verbs open the data directory the way `apiwatch serve` does (lock, ledger, store,
recovery), so they refuse to run beside a collector that holds it.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from apiwatch.cli._exit import fail
from apiwatch.collector.pipeline import Pipeline
from apiwatch.collector.runtime import Collector
from apiwatch.config import CONFIG_NAME, Config, load_config
from apiwatch.errors import ApiwatchError
from apiwatch.events import make_event

F = TypeVar("F", bound=Callable[..., Any])
Progress2 = Callable[[int, int], None]


def data_options(func: F) -> F:
    """Add `--data DIR` and `--config FILE` (the project's contract for data verbs)."""
    func = click.option(
        "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
        help=f"The config file (default ./{CONFIG_NAME} if present).",
    )(func)
    return click.option(
        "--data", type=click.Path(file_okay=False, path_type=Path),
        help="The data directory (default ./apiwatch-data).",
    )(func)


def load(config_path: Path | None, data: Path | None) -> Config:
    """The config `--config` names (or ./apiwatch.toml), with `--data` applied; exits 2 if bad."""
    path = config_path
    if path is None and Path(CONFIG_NAME).is_file():
        path = Path(CONFIG_NAME)
    try:
        config = load_config(path)
    except ApiwatchError as exc:
        fail(str(exc))
    if data is not None:
        config.data_dir = data
    # Absolute: the default store URL (sqlite:///<data_dir>/...) needs an absolute path.
    config.data_dir = config.data_dir.absolute()
    return config


@contextmanager
def progress_bar(label: str) -> Iterator[Progress2 | None]:
    """A progress callback (done, total) drawing on stderr, or None when it is no terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    columns = (TextColumn(label), BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def open_collector(
    config: Config, progress: Progress2 | None = None, *, detect: bool = False
) -> Iterator[Collector]:
    """The data directory, opened and recovered; closed (checkpoint, snapshot) afterwards.

    With `detect`, what is ingested runs through the detection rules as in `apiwatch serve`.
    """
    try:
        collector = Collector.open(config, progress, detect=detect)
    except (ApiwatchError, OSError) as exc:
        fail(f"cannot open {config.data_dir}: {exc}")
    try:
        yield collector
    finally:
        collector.close()


def record_read(pipeline: Pipeline, what: str, count: int, **labels: str) -> None:
    """Record that the local user read `count` stored events with `what` (`data_access`).

    The record is written before the results are shown: a read that cannot be recorded fails.
    """
    user = getpass.getuser()
    fields: dict[str, Any] = {
        "user.name": user,
        "apiwatch.object.type": "event",
        "apiwatch.object.count": count,
        "process.name": "apiwatch",
        "process.pid": os.getpid(),
        "labels.interface": "cli",
        **{f"labels.{name}": value for name, value in labels.items()},
    }
    message = f"{user} read {count} event record(s) with `apiwatch {what}`"
    try:
        pipeline.record(make_event("data_access", fields, message=message))
    except (ApiwatchError, OSError) as exc:
        fail(f"cannot record this read, so it is not shown: {exc}")
