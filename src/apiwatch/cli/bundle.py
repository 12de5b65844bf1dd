"""`apiwatch verify-bundle`: check an evidence bundle with nothing but the log's vkey.

Exit 0 every record proven, 1 anything fails (reasons on stderr), 2 cannot run.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import click

from apiwatch.cli import main
from apiwatch.cli._exit import FINDING, fail
from apiwatch.cli.checkpoint import load_verifiers
from apiwatch.ledger.bundle import verify_bundle
from apiwatch.ledger.errors import LedgerError


@main.command("verify-bundle")
@click.option(
    "--vkey",
    "vkeys",
    multiple=True,
    required=True,
    help="The log's vkey (name+id+key) or a file of vkeys; repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def verify_bundle_command(vkeys: tuple[str, ...], as_json: bool, file: Path) -> None:
    """Verify the evidence bundle FILE: its signed checkpoint and every record's proof."""
    verifiers = load_verifiers(vkeys)
    try:
        report = verify_bundle(file, verifiers)
    except LedgerError as exc:
        fail(str(exc))
    cp = report.checkpoint
    if as_json:
        click.echo(
            json.dumps(
                {
                    "valid": report.ok,
                    "origin": cp.origin if cp else None,
                    "size": cp.size if cp else None,
                    "root_hash_b64": base64.b64encode(cp.root_hash).decode() if cp else None,
                    "verified_by": list(report.verified_by),
                    "verified_records": list(report.verified),
                    "failures": list(report.failures),
                },
                indent=2,
            )
        )
    elif cp is not None:
        click.echo(f"checkpoint {cp.origin} size {cp.size} root {cp.root_hash.hex()}")
        click.echo(f"{len(report.verified)} record(s) proven included: {list(report.verified)}")
    for failure in report.failures:
        click.echo(f"apiwatch: {file}: {failure}", err=True)
    if not report.ok:
        raise SystemExit(FINDING)
