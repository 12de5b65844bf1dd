"""`apiwatch timeline --ip X | --user U | --key K`: everything one actor did, in time order.

The actor's events from the store, the objects each one read or changed (`apiwatch.object.*`)
beside it, and a summary of every object read on the page. Like any read, the timeline is
recorded as a `data_access` event before it is shown.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from apiwatch.cli import main
from apiwatch.cli._collector import data_options, load, open_collector, record_read
from apiwatch.cli._exit import fail
from apiwatch.cli._render import objects, show_page
from apiwatch.cli.query import page_options, time_range
from apiwatch.store import ActorKind, Order, Page, QueryError, StoreError


@main.command()
@click.option("--ip", help="A source IP address.")
@click.option("--user", help="A user name.")
@click.option("--key", help="An API key id (its fingerprint, apiwatch.api_key.id).")
@page_options
@data_options
def timeline(*, ip: str | None, user: str | None, key: str | None, since: str,
             until: str | None, order: Order, limit: int, cursor: str | None, as_json: bool,
             data: Path | None, config_path: Path | None) -> None:
    """Show what one actor (--ip, --user or --key) did, with the objects it read."""
    actors: tuple[tuple[ActorKind, str | None], ...] = (("ip", ip), ("user", user), ("key", key))
    chosen = [(kind, value) for kind, value in actors if value]
    if len(chosen) != 1:
        fail("give exactly one of --ip, --user, --key")
    kind, value = chosen[0]
    start, end = time_range(since, until)
    with open_collector(load(config_path, data)) as collector:
        try:
            page: Page = collector.store.timeline(
                kind, value, since=start, until=end, order=order, limit=limit, cursor=cursor
            )
        except (QueryError, StoreError) as exc:
            fail(str(exc))
        record_read(collector.pipeline, "timeline", len(page.events), actor=f"{kind}:{value}",
                    since=since)
    show_page(page, as_json=as_json, with_objects=True)
    read = Counter(objects(s.event) for s in page.events
                   if s.event.get("event.action") == "data_access")
    read.pop("", None)
    if read and not as_json:
        click.echo("objects read: " + "; ".join(f"{o} ({n}x)" for o, n in read.most_common()))
