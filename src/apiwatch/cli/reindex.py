"""`apiwatch reindex`: rebuild the index store from the ledger, the record of truth.

A SQLite index is built beside the old one from every ledger record, then moved over it, so an
interrupted rebuild leaves the old index in place (and the next open heals it anyway). A
PostgreSQL store is emptied in one transaction (`PostgresStore.clear`), then refilled by the
same replay that catches a store up on open (`Pipeline.recover`); if that is interrupted, the
next open resumes it from the last event stored.
The data directory must not be open in a running collector.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click

from apiwatch.cli import main
from apiwatch.cli._collector import Progress2, data_options, load, open_collector, progress_bar
from apiwatch.cli._exit import fail
from apiwatch.config import Config
from apiwatch.errors import ApiwatchError

SQLITE_PREFIX = "sqlite://"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")
_SIDE_FILES = ("-wal", "-shm", "-journal")


def _remove(path: Path) -> None:
    for suffix in ("", *_SIDE_FILES):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _rebuild_sqlite(config: Config, progress: Progress2 | None) -> tuple[int, str]:
    """Build a fresh SQLite file from the ledger and swap it in; (records, where)."""
    target = Path(config.store_url.removeprefix(SQLITE_PREFIX))
    fresh = target.with_name(target.name + ".rebuild")
    _remove(fresh)
    building = dataclasses.replace(
        config, store=dataclasses.replace(config.store, url=f"{SQLITE_PREFIX}{fresh}")
    )
    with open_collector(building, progress) as collector:
        records = collector.replayed
        # Still holding the data directory's lock: swap the index in before releasing it.
        collector.store.close()
        _remove(target)
        fresh.replace(target)
    return records, str(target)


def _rebuild_postgres(config: Config, progress: Progress2 | None) -> tuple[int, str]:
    """Empty the PostgreSQL store and replay the whole ledger into it; (records, where)."""
    # Imported here: psycopg is an optional dependency (the `postgres` extra).
    from apiwatch.store.postgres import PostgresStore  # noqa: PLC0415

    # Opening takes the data directory's lock first, so a running collector's store is never
    # emptied; the catch-up replay that opening does is cheap next to the rebuild.
    with open_collector(config) as collector:
        store = collector.store
        if not isinstance(store, PostgresStore):  # open_store's contract; narrows the type
            fail("reindex: a postgresql:// URL did not open a PostgreSQL store")
        try:
            store.clear()
            # An empty store has no highest index, so recovery replays from ledger index 0.
            records = collector.pipeline.recover(progress)
        except ApiwatchError as exc:
            fail(f"reindex failed (the next open resumes it): {exc}")
    return records, "the PostgreSQL store"  # not the DSN: it may hold a password


@main.command()
@data_options
def reindex(*, data: Path | None, config_path: Path | None) -> None:
    """Rebuild the index store from the ledger."""
    config = load(config_path, data)
    url = config.store_url
    if url.startswith(SQLITE_PREFIX):
        rebuild = _rebuild_sqlite
    elif url.startswith(POSTGRES_PREFIXES):
        rebuild = _rebuild_postgres
    else:
        fail(f"reindex rebuilds a store named by a sqlite:/// or postgresql:// URL, not {url!r}")
    started = time.perf_counter()
    with progress_bar("reindexing") as progress:
        records, where = rebuild(config, progress)
    seconds = time.perf_counter() - started
    click.echo(f"reindexed {records} ledger records into {where} in {seconds:.1f}s")
