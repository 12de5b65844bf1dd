"""`apiwatch checkpoint verify`: check any C2SP signed note or checkpoint against vkeys.

Works on ours and on other logs' checkpoints (Go checksum database, transparency-dev logs):
only the vkeys are needed. Exit 0 valid, 1 invalid (reason on stderr), 2 cannot run.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import click

from apiwatch.cli import main
from apiwatch.cli._exit import FINDING, fail
from apiwatch.ledger.checkpoint import Checkpoint
from apiwatch.ledger.errors import NoteError
from apiwatch.ledger.note import Verifier, open_note


def load_verifiers(values: tuple[str, ...]) -> list[Verifier]:
    """Verifiers from --vkey values: a vkey string, or a file of vkeys one per line."""
    vkeys: list[str] = []
    for value in values:
        path = Path(value)
        if path.is_file():
            vkeys += [line.strip() for line in path.read_text().splitlines() if line.strip()]
        else:
            vkeys.append(value)
    try:
        return [Verifier.from_vkey(vkey) for vkey in vkeys]
    except NoteError as exc:
        fail(f"bad --vkey: {exc}")


def read_input(file: str) -> bytes:
    """The bytes of FILE, or stdin for `-`; exits 2 if unreadable."""
    if file == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(file).read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")


_VKEY = click.option(
    "--vkey",
    "vkeys",
    multiple=True,
    required=True,
    help="A trusted vkey (name+id+key) or a file of them; repeatable.",
)


@main.group()
def checkpoint() -> None:
    """Signed checkpoints (C2SP tlog-checkpoint in a C2SP signed note)."""


@checkpoint.command()
@_VKEY
@click.option("--origin", help="Require this checkpoint origin.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def verify(vkeys: tuple[str, ...], origin: str | None, as_json: bool, file: str) -> None:
    """Verify the signed note or checkpoint in FILE (`-` for stdin) against trusted vkeys."""
    verifiers = load_verifiers(vkeys)
    msg = read_input(file)
    try:
        note = open_note(msg, verifiers)
    except NoteError as exc:
        fail(f"{file}: {exc}", FINDING)
    cp: Checkpoint | None = None
    try:
        cp = Checkpoint.parse(note.text, origin)
    except NoteError as exc:
        if origin is not None:  # a checkpoint was demanded
            fail(f"{file}: not a checkpoint of {origin}: {exc}", FINDING)
    result: dict[str, Any] = {
        "valid": True,
        "verified_by": [v.vkey for v in note.verified_by],
        "other_signatures": [f"{s.name}+{s.key_id:08x}" for s in note.unverified],
        "checkpoint": None,
    }
    if cp is None:
        result["text"] = note.text
    else:
        result["checkpoint"] = {
            "origin": cp.origin,
            "size": cp.size,
            "root_hash_b64": base64.b64encode(cp.root_hash).decode(),
            "root_hash_hex": cp.root_hash.hex(),
            "extensions": list(cp.extensions),
        }
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    click.echo("valid signature by " + ", ".join(v.name for v in note.verified_by))
    if cp is None:
        click.echo("signed note (not a checkpoint):")
        click.echo(note.text, nl=False)
        return
    click.echo(f"origin     {cp.origin}")
    click.echo(f"size       {cp.size}")
    click.echo(f"root       {result['checkpoint']['root_hash_b64']}")
    click.echo(f"root hex   {cp.root_hash.hex()}")
    for line in cp.extensions:
        click.echo(f"extension  {line}")
