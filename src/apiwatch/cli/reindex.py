"""`apiwatch reindex`: rebuild the index store from the ledger, the record of truth.

The new SQLite index is built beside the old one from every ledger record, then moved over it,
so an interrupted rebuild leaves the old index in place (and the next open heals it anyway).
The data directory must not be open in a running collector.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click

from apiwatch.cli import main
from apiwatch.cli._collector import data_options, load, open_collector, progress_bar
from apiwatch.cli._exit import fail

SQLITE_PREFIX = "sqlite://"
_SIDE_FILES = ("-wal", "-shm", "-journal")


def _sqlite_path(url: str) -> Path:
    if not url.startswith(SQLITE_PREFIX):
        fail("reindex rebuilds a SQLite index; empty the PostgreSQL one yourself, then any "
             "apiwatch verb that opens the data directory refills it from the ledger")
    return Path(url.removeprefix(SQLITE_PREFIX))


def _remove(path: Path) -> None:
    for suffix in ("", *_SIDE_FILES):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@main.command()
@data_options
def reindex(*, data: Path | None, config_path: Path | None) -> None:
    """Rebuild the index store from the ledger."""
    config = load(config_path, data)
    target = _sqlite_path(config.store_url)
    fresh = target.with_name(target.name + ".rebuild")
    _remove(fresh)
    building = dataclasses.replace(
        config, store=dataclasses.replace(config.store, url=f"{SQLITE_PREFIX}{fresh}")
    )
    started = time.perf_counter()
    with progress_bar("reindexing") as progress, open_collector(building, progress) as collector:
        records = collector.replayed
        # Still holding the data directory's lock: swap the index in before releasing it.
        collector.store.close()
        _remove(target)
        fresh.replace(target)
    seconds = time.perf_counter() - started
    click.echo(f"reindexed {records} ledger records into {target} in {seconds:.1f}s")
