"""`apiwatch export`: write chosen records with inclusion proofs as an evidence bundle.

The proofs are at the ledger's latest signed checkpoint, so the bundle verifies with nothing
but the log's vkey (`apiwatch verify-bundle`). The ledger must not be open in a collector.
"""

from __future__ import annotations

from pathlib import Path

import click

from apiwatch.cli import main
from apiwatch.cli._exit import fail
from apiwatch.ledger.bundle import write_bundle
from apiwatch.ledger.errors import LedgerError
from apiwatch.ledger.layout import claimed_checkpoint
from apiwatch.ledger.log import Ledger

DEFAULT_DATA = Path("apiwatch-data")


def _indexes(values: tuple[str, ...]) -> list[int]:
    """Record indexes from `N` and `A-B` (inclusive) values."""
    out: list[int] = []
    for value in values:
        lo, _, hi = value.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            fail(f"bad record index {value!r}: use N or A-B")
        out += range(int(lo), int(hi or lo) + 1)
    return sorted(set(out))


@main.command()
@click.argument("ledger_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The apiwatch data directory (its ledger is DATA/ledger).")
@click.option("--record", "records", multiple=True, required=True,
              help="A record index N or range A-B to export; repeatable.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The bundle file to write.")
def export(ledger_dir: Path | None, data: Path | None, records: tuple[str, ...],
           out: Path) -> None:
    """Export records with proofs against the latest signed checkpoint."""
    if ledger_dir and data:
        fail("give either LEDGER_DIR or --data, not both")
    directory = ledger_dir or (data or DEFAULT_DATA) / "ledger"
    wanted = _indexes(records)
    try:
        with Ledger.open(directory) as ledger:
            signed = ledger.latest_checkpoint()
            cp = claimed_checkpoint(signed) if signed else None
            if signed is None or cp is None:
                fail(f"{directory} has no signed checkpoint yet: run `apiwatch checkpoint`")
            beyond = [i for i in wanted if i >= cp.size]
            if beyond:
                fail(f"record {beyond[0]} is not covered by the latest checkpoint "
                     f"(size {cp.size})")
            chosen = [(i, ledger.read(i)) for i in wanted]
            proofs = [ledger.inclusion_proof(i, cp.size) for i in wanted]
        write_bundle(chosen, proofs, signed, out)
    except (LedgerError, OSError) as exc:
        fail(f"cannot export from {directory}: {exc}")
    click.echo(f"wrote {len(chosen)} records proven at size {cp.size} to {out}")
