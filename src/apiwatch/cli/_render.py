"""Showing a page of stored events: JSON lines (one `{"index", "event"}` per line) or a table.

The cursor of the next page goes to stderr, so that stdout stays pure data.
"""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from apiwatch.events import Event
from apiwatch.store import Page

#: (heading, fields tried in order) of the table's columns.
_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("time", ("@timestamp",)),
    ("action", ("event.action",)),
    ("outcome", ("event.outcome",)),
    ("source", ("source.ip", "source.address")),
    ("user", ("user.name",)),
    ("key", ("apiwatch.api_key.id",)),
    ("what", ("apiwatch.route", "url.path", "event.reason", "message")),
)


def objects(event: Event) -> str:
    """`type:id,id` of the objects an event names (`apiwatch.object.*`), or ""."""
    kind = event.get("apiwatch.object.type")
    if not kind:
        return ""
    ids = event.get("apiwatch.object.ids") or []
    if ids:
        return f"{kind}:{','.join(map(str, ids))}"
    count = event.get("apiwatch.object.count")
    return f"{kind} x{count}" if count is not None else str(kind)


def _cell(event: Event, names: tuple[str, ...]) -> str:
    for name in names:
        value = event.get(name)
        if value not in (None, ""):
            return str(value)
    return ""


def show_page(page: Page, *, as_json: bool, with_objects: bool = False) -> None:
    """Print the page's events, then (on stderr) how to fetch the next page."""
    if as_json:
        for stored in page.events:
            # The shape of GET /v1/events items: the ledger index is what `export` takes.
            click.echo(json.dumps({"index": stored.index, "event": stored.event},
                                  ensure_ascii=False))
    else:
        table = Table(show_lines=False, pad_edge=False)
        table.add_column("#", justify="right")
        for heading, _ in _COLUMNS:
            table.add_column(heading, overflow="fold")
        if with_objects:
            table.add_column("objects", overflow="fold")
        for stored in page.events:
            cells = [_cell(stored.event, names) for _, names in _COLUMNS]
            if with_objects:
                cells.append(objects(stored.event))
            # Values are sanitized text; escape() keeps rich from reading `[x]` as markup.
            table.add_row(str(stored.index), *(escape(c) for c in cells))
        # Piped output has no terminal width to fit; keep rows whole rather than folded at 80.
        width = None if sys.stdout.isatty() else 1000
        Console(soft_wrap=False, width=width).print(table)
    if page.cursor is not None:
        click.echo(f"more: --cursor {page.cursor}", err=True)
