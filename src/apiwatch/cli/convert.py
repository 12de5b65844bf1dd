"""`apiwatch convert`: re-encode JSON-lines events as ECS, OCSF, CEF or RFC 5424 syslog.

Each input line is decoded and validated (`apiwatch.formats.jsonl`), sanitized (the input is
never trusted: injection neutralized, secrets redacted) and encoded to stdout. A bad line is
reported on stderr with its file and line number and the rest are still converted; the exit
status is 1 if any line was bad. Syslog output is octet-counted by default (RFC 6587 3.4.1),
the framing that no message content can break; `--framing newline` gives one message per line.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import click

from apiwatch.cli import main
from apiwatch.errors import ApiwatchError, DecodeError
from apiwatch.formats import encode_cef, encode_ecs, encode_ocsf, encode_syslog
from apiwatch.formats.jsonl import iter_decode, read_lines
from apiwatch.formats.syslog import frame_octet_counted

Encoder = Callable[[Mapping[str, Any]], bytes]

_ENCODERS: dict[str, Encoder] = {
    "ecs": encode_ecs,
    "ocsf": encode_ocsf,
    "cef": encode_cef,
}


class _Failure(click.ClickException):
    """A runtime error: one line on stderr, exit status 2 (the project's contract)."""

    exit_code = 2


def _syslog_encoder(framing: str) -> Encoder:
    if framing == "octet":
        return lambda event: frame_octet_counted(encode_syslog(event))
    return lambda event: encode_syslog(event) + b"\n"


@main.command()
@click.option(
    "--to", "fmt", type=click.Choice(["ecs", "ocsf", "cef", "syslog"]), required=True,
    help="Output format.",
)
@click.option(
    "--framing", type=click.Choice(["octet", "newline"]), default="octet", show_default=True,
    help="Syslog framing (RFC 6587): octet counting or one message per line.",
)
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML config; its [sanitize] table configures the sanitizer.",
)
@click.argument(
    "files", nargs=-1, type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
def convert(fmt: str, framing: str, config_path: Path | None, files: tuple[str, ...]) -> None:
    """Convert JSON-lines events from FILES (stdin when none or `-`) to another format."""
    # Imported here so that `apiwatch --help` and the other verbs do not load the sanitizer's
    # secret patterns.
    from apiwatch.sanitize import SanitizeConfig, Sanitizer  # noqa: PLC0415

    try:
        table = _sanitize_table(config_path)
        sanitize = Sanitizer(SanitizeConfig.from_mapping(table)) if table else Sanitizer()
    except ApiwatchError as exc:
        raise _Failure(str(exc)) from None
    encode = _syslog_encoder(framing) if fmt == "syslog" else _ENCODERS[fmt]
    out = click.get_binary_stream("stdout")
    bad = 0
    try:
        for name in files or ("-",):
            bad += _convert_one(name, encode, sanitize, out)
        out.flush()
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        sys.stderr.close()
        return
    except OSError as exc:
        raise _Failure(f"cannot read input: {exc}") from None
    if bad:
        raise SystemExit(1)


def _sanitize_table(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as f:
            config = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise _Failure(f"cannot read config {path}: {exc}") from None
    table = config.get("sanitize", {})
    if not isinstance(table, dict):
        raise _Failure(f"{path}: [sanitize] must be a table")
    return table


def _convert_one(
    name: str, encode: Encoder, sanitize: Callable[[Any], Any], out: IO[bytes]
) -> int:
    """Convert one input; return how many of its lines were bad."""
    label = "<stdin>" if name == "-" else name
    stream = click.open_file(name, "rb")
    bad = 0
    with stream:
        for item in iter_decode(read_lines(stream)):
            if isinstance(item, DecodeError):
                bad += 1
                click.echo(f"{label}: {item}", err=True)
                continue
            out.write(encode(sanitize(item)))
    return bad
