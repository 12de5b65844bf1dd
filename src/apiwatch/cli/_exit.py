"""How a verb stops with the project's exit codes: a one-line reason on stderr, then the code."""

from __future__ import annotations

from typing import NoReturn

import click

FINDING = 1  # the input was checked and is bad (tampering, invalid signature)
CANNOT_RUN = 2  # usage or runtime error: nothing was checked


def fail(reason: str, code: int = CANNOT_RUN) -> NoReturn:
    """Print `reason` on one line to stderr and exit with `code`."""
    click.echo(f"apiwatch: {' '.join(reason.split())}", err=True)
    raise SystemExit(code)
