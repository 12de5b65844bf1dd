"""`apiwatch export`: write chosen records with inclusion proofs as an evidence bundle.

Records are chosen by index (`--record N`, `--record A-B`) or by a query over the index store
(`--query 'apiwatch.api_key.id:ak_...' --since 30d`: "every event this key produced"). The proofs
are at the ledger's latest signed checkpoint, so the bundle verifies with nothing but the log's
vkey (`apiwatch verify-bundle`). The ledger is read through a read-only snapshot, so this runs
beside a live collector.
"""

from __future__ import annotations

from pathlib import Path

import click

from apiwatch.cli import main
from apiwatch.cli._collector import data_options, load
from apiwatch.cli._exit import fail
from apiwatch.cli.query import time_range
from apiwatch.ledger.bundle import write_bundle
from apiwatch.ledger.errors import LedgerError
from apiwatch.ledger.snapshot import LedgerSnapshot
from apiwatch.store import Query, QueryError, StoreError, open_store
from apiwatch.store.base import MAX_LIMIT

#: A bundle is for a person to hand over; past this many records, narrow the query.
MAX_RECORDS = 100_000


def _indexes(values: tuple[str, ...]) -> list[int]:
    """Record indexes from `N` and `A-B` (inclusive) values."""
    out: list[int] = []
    for value in values:
        lo, _, hi = value.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            fail(f"bad record index {value!r}: use N or A-B")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def _matching(store_url: str, text: str, since: str, until: str | None) -> list[int]:
    """Ledger indexes of every stored event the filter `text` selects in the time range."""
    start, end = time_range(since, until)
    try:
        query = Query.parse(text, since=start, until=end, order="oldest", limit=MAX_LIMIT)
        store = open_store(store_url)
    except (QueryError, StoreError) as exc:
        fail(str(exc))
    found: list[int] = []
    try:
        while True:
            page = store.query(query)
            found += (stored.index for stored in page.events)
            if page.cursor is None or len(found) > MAX_RECORDS:
                return found
            query = Query(query.filter, start, end, "oldest", MAX_LIMIT, page.cursor)
    finally:
        store.close()


@main.command()
@click.argument("ledger_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--record", "records", multiple=True,
              help="A record index N or range A-B to export; repeatable.")
@click.option("--query", "query_text", help="Export every stored event this filter selects.")
@click.option("--since", default="30d", show_default=True, help="With --query: oldest event.")
@click.option("--until", help="With --query: newest event (exclusive).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The bundle file to write.")
@data_options
def export(*, ledger_dir: Path | None, records: tuple[str, ...], query_text: str | None,
           since: str, until: str | None, out: Path, data: Path | None,
           config_path: Path | None) -> None:
    """Export records with proofs against the latest signed checkpoint."""
    if ledger_dir and data:
        fail("give either LEDGER_DIR or --data, not both")
    if not records and query_text is None:
        fail("choose records with --record or --query")
    config = load(config_path, data)
    directory = ledger_dir or config.data_dir / "ledger"
    wanted = set(_indexes(records))
    if query_text is not None:
        wanted.update(_matching(config.store_url, query_text, since, until))
    if len(wanted) > MAX_RECORDS:
        fail(f"more than {MAX_RECORDS} records selected: narrow the query or the range")
    try:
        with LedgerSnapshot(directory) as snapshot:
            chosen = sorted(wanted)
            beyond = [i for i in chosen if i >= snapshot.size]
            if beyond:
                fail(f"record {beyond[0]} is not covered by the latest checkpoint "
                     f"(size {snapshot.size}); try again after the next checkpoint")
            proven = [snapshot.proven(i) for i in chosen]
            write_bundle([(i, data) for i, (data, _) in zip(chosen, proven, strict=True)],
                         [proof for _, proof in proven], snapshot.signed, out)
            size = snapshot.size
    except (LedgerError, OSError) as exc:
        fail(f"cannot export from {directory}: {exc}")
    click.echo(f"wrote {len(chosen)} records proven at size {size} to {out}")
