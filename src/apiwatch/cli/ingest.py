"""`apiwatch ingest FILE...`: read log files into the ledger and the store, on event time.

The events go through the same `Pipeline.ingest` as a batch sent to POST /v1/events
(sanitized, stamped with the source, appended to the ledger, indexed), keeping the time each
line carries. A line that does not parse is stored as a `parse_failure` event with the raw line,
so nothing read is dropped; its count makes the exit status 1 (a finding), after everything else
was stored. `--format auto` guesses each file's format from its first lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from itertools import islice
from pathlib import Path
from typing import IO, Any

import click

from apiwatch.cli import main
from apiwatch.cli._collector import data_options, load, open_collector, progress_bar
from apiwatch.cli._exit import FINDING, fail
from apiwatch.collector.gc_policy import collector_gc
from apiwatch.collector.pipeline import Pipeline
from apiwatch.errors import DecodeError
from apiwatch.events import Event
from apiwatch.formats.autodetect import FORMATS, detect_format, parse_lines
from apiwatch.formats.jsonl import decode_line, read_lines
from apiwatch.formats.parsed import ParseStats, failure_event
from apiwatch.heap import keep_freed_memory

#: Events per `Pipeline.ingest` call: one ledger fsync and one store transaction each.
BATCH_EVENTS = 5_000
DEFAULT_SOURCE = "ingest"
_SNIFF_LINES = 50


def _text(raw: bytes) -> str:
    # surrogateescape keeps invalid bytes visible: the sanitizer escapes them as \udcXX.
    return raw.decode("utf-8", "surrogateescape")


def _detect(path: Path) -> str:
    with path.open("rb") as fh:
        head = [_text(line) for line in islice(fh, _SNIFF_LINES * 4)]
    fmt = detect_format(head, name=path.name, sample=_SNIFF_LINES)
    if fmt is None:
        fail(f"{path}: cannot tell its format; give --format")
    return fmt


def _jsonl_events(lines: Iterable[bytes], stats: ParseStats) -> Iterator[Event]:
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            stats.ignored += 1
            continue
        try:
            event = decode_line(line, lineno)
        except DecodeError as exc:
            stats.unparsed += 1
            yield failure_event(_text(line), "jsonl", str(exc))
            continue
        stats.parsed += 1
        stats.events += 1
        yield event


def _events(fmt: str, fh: IO[bytes], stats: ParseStats, year: int | None) -> Iterator[Event]:
    if fmt == "jsonl":
        return _jsonl_events(read_lines(fh), stats)
    return parse_lines(fmt, (_text(line) for line in fh), stats=stats, year=year,
                       decode_json=lambda body: decode_line(body.encode(), 1))


def ingest_file(
    pipeline: Pipeline,
    path: Path,
    fmt: str,
    *,
    source: str,
    year: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ParseStats:
    """Parse `path` as `fmt` and store its events under `source`; returns the line counts."""
    stats = ParseStats()
    size = path.stat().st_size
    with path.open("rb") as fh:
        batch: list[Event] = []
        for event in _events(fmt, fh, stats, year):
            batch.append(event)
            if len(batch) >= BATCH_EVENTS:
                pipeline.ingest(source, batch, wait=False)  # indexed while the next is parsed
                batch = []
                if progress is not None:
                    progress(fh.tell(), size)
        if batch:
            pipeline.ingest(source, batch, wait=False)
    pipeline.flush()
    if progress is not None:
        progress(size, size)
    return stats


def _summary(path: Path, fmt: str, stats: ParseStats) -> dict[str, Any]:
    return {"file": str(path), "format": fmt, "lines": stats.lines, **asdict(stats)}


@main.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice([*FORMATS, "auto"]), default="auto",
              show_default=True, help="The format of every FILE; auto guesses per file.")
@click.option("--year", type=int, help="Year of RFC 3164 timestamps, which have none "
              "(default: the current one, or the last if that puts a line in the future).")
@click.option("--source", default=DEFAULT_SOURCE, show_default=True,
              help="The source name the events are stored under.")
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
def ingest(*, files: tuple[Path, ...], fmt: str, year: int | None, source: str,
           data: Path | None, config_path: Path | None, as_json: bool) -> None:
    """Parse log files (sshd, nginx, apache, syslog, JSON lines) into the ledger and store."""
    config = load(config_path, data)
    formats = [_detect(path) if fmt == "auto" else fmt for path in files]
    results = []
    keep_freed_memory()  # the command's own process (see apiwatch.heap)
    with open_collector(config, detect=True) as collector, collector_gc():
        for path, file_fmt in zip(files, formats, strict=True):
            with progress_bar(path.name) as progress:
                try:
                    stats = ingest_file(collector.pipeline, path, file_fmt, source=source,
                                        year=year, progress=progress)
                except OSError as exc:
                    fail(f"cannot read {path}: {exc.strerror}")
            results.append(_summary(path, file_fmt, stats))
        ledger_size = collector.ledger.size
    totals = {k: sum(r[k] for r in results) for k in ("lines", "parsed", "ignored", "unparsed",
                                                         "events")}
    if as_json:
        click.echo(json.dumps({"files": results, "total": totals, "ledger_size": ledger_size}))
    else:
        for r in results:
            click.echo(f"{r['file']} ({r['format']}): {r['lines']} lines: {r['parsed']} parsed "
                       f"({r['events']} events), {r['ignored']} ignored, "
                       f"{r['unparsed']} unparsed (kept as parse_failure events)")
        click.echo(f"stored {totals['events'] + totals['unparsed']} events under source "
                   f"{source!r}; ledger size {ledger_size}")
    if totals["unparsed"]:
        raise SystemExit(FINDING)
