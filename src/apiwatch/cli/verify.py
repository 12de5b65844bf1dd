"""`apiwatch verify`: check a ledger directory for tampering (exit 0 clean, 1 found, 2 error)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from apiwatch.cli import main
from apiwatch.cli._exit import FINDING, fail
from apiwatch.cli.checkpoint import load_verifiers
from apiwatch.ledger.errors import LedgerError
from apiwatch.ledger.verify import verify_ledger

DEFAULT_DATA = Path("apiwatch-data")


@contextmanager
def _progress() -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr while records are hashed, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    columns = (TextColumn("verifying"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("verify", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@main.command()
@click.argument("ledger_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The apiwatch data directory (its ledger is DATA/ledger).")
@click.option("--trusted", type=click.Path(dir_okay=False, path_type=Path),
              help="A signed checkpoint pinned from elsewhere (a witness, an earlier fetch).")
@click.option("--vkey", "vkeys", multiple=True,
              help="Trust this vkey (or a file of vkeys) instead of the ledger's own keys/.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(ledger_dir: Path | None, data: Path | None, trusted: Path | None,
           vkeys: tuple[str, ...], as_json: bool) -> None:
    """Verify every record of a ledger against its signed checkpoints."""
    if ledger_dir and data:
        fail("give either LEDGER_DIR or --data, not both")
    directory = ledger_dir or (data or DEFAULT_DATA) / "ledger"
    verifiers = load_verifiers(vkeys) if vkeys else None
    try:
        pinned = trusted.read_bytes() if trusted else None
    except OSError as exc:
        fail(f"cannot read {trusted}: {exc.strerror}")
    try:
        with _progress() as progress:
            result = verify_ledger(directory, trusted=pinned, verifiers=verifiers,
                                   progress=progress)
    except (LedgerError, OSError) as exc:
        fail(f"cannot verify {directory}: {exc}")
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        for f in result.findings:
            where = "" if f.index is None else f" at {f.index}"
            click.echo(f"{f.kind}{where}: {f.detail}")
        status = "ok" if result.ok else "TAMPERING FOUND"
        click.echo(f"{status}: {result.size} records, {len(result.findings)} findings")
    if not result.ok:
        raise SystemExit(FINDING)
