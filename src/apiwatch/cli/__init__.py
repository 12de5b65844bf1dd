"""The `apiwatch` command.

Each verb lives in its own module and registers itself on `main`; exit codes follow the
project contract: 0 ok, 1 a finding (tampering, a bad input line, a failing rule test),
2 usage or runtime error with a one-line reason on stderr.
"""

from __future__ import annotations

import click

from apiwatch import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="apiwatch")
def main() -> None:
    """apiwatch: security logging and monitoring for HTTP APIs (OWASP API10)."""


def _register() -> None:
    # Imported for their side effect of adding commands to `main`.
    from apiwatch.cli import (  # noqa: F401, PLC0415
        alerts,
        bundle,
        checkpoint,
        convert,
        demo,
        export,
        export_config,
        ingest,
        keys,
        query,
        reindex,
        rules,
        serve,
        timeline,
        users,
        verify,
    )


_register()
