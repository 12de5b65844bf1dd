"""`apiwatch keys`: the ledger's signing keyring (generate, list, rotate, retire, witness).

Keys live in ``<data>/ledger/keys`` (see `apiwatch.ledger.keys`). Commands print vkeys, which
are public; private keys stay in their 0600 files and are never printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from apiwatch.cli import main
from apiwatch.cli._exit import fail
from apiwatch.ledger.errors import KeyringError
from apiwatch.ledger.keys import KeyEntry, Keyring

_DATA = click.option(
    "--data",
    "data",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("apiwatch-data"),
    show_default=True,
    help="The apiwatch data directory.",
)


def _keys_dir(data: Path) -> Path:
    return data / "ledger" / "keys"


def _load(data: Path) -> Keyring:
    try:
        return Keyring.load(_keys_dir(data))
    except KeyringError as exc:
        fail(str(exc))


def _print_new(entry: KeyEntry, verb: str) -> None:
    click.echo(f"{verb} {entry.role} key {entry.name}; vkey (public, share it with verifiers):")
    click.echo(entry.vkey)


@main.group()
def keys() -> None:
    """Manage the ledger's signing keys (Ed25519, C2SP signed-note format)."""


@keys.command()
@click.argument("name")
@_DATA
def generate(name: str, data: Path) -> None:
    """Create the keyring with one active signing key NAME (use the log's origin)."""
    try:
        ring = Keyring.create(_keys_dir(data), name)
    except KeyringError as exc:
        fail(str(exc))
    _print_new(ring.entries[0], "generated")


@keys.command("list")
@_DATA
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_keys(data: Path, as_json: bool) -> None:
    """List every key with its role and vkey."""
    entries = _load(data).entries
    if as_json:
        rows = [
            {"name": e.name, "role": e.role, "created": e.created, "vkey": e.vkey}
            for e in entries
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for e in entries:
        click.echo(f"{e.role:<16} {e.created}  {e.vkey}")


@keys.command()
@click.argument("new")
@_DATA
def rotate(new: str, data: Path) -> None:
    """Add active key NEW; checkpoints are signed by old and new until the old is retired."""
    ring = _load(data)
    try:
        entry = ring.rotate(new)
    except KeyringError as exc:
        fail(str(exc))
    _print_new(entry, "added")


@keys.command()
@click.argument("old")
@_DATA
def retire(old: str, data: Path) -> None:
    """Stop signing with OLD and delete its private key; its vkey keeps verifying."""
    ring = _load(data)
    try:
        entry = ring.retire(old)
    except KeyringError as exc:
        fail(str(exc))
    click.echo(f"{entry.name} is now {entry.role}")


@keys.command()
@click.argument("name")
@_DATA
def witness(name: str, data: Path) -> None:
    """Generate the witness (cosigner) key NAME."""
    ring = _load(data)
    try:
        entry = ring.add_witness(name)
    except KeyringError as exc:
        fail(str(exc))
    _print_new(entry, "generated")
