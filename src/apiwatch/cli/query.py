"""`apiwatch query FILTER`: search stored events with the filter language, page by page.

FILTER is the store's language (`event.action:authn_login_fail AND source.ip:10.0.0.0/8`);
`--cursor` continues where the previous page ended (its value is printed on stderr). Every
query is itself recorded as a `data_access` event before its results are shown.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from apiwatch.cli import main
from apiwatch.cli._collector import data_options, load, open_collector, record_read
from apiwatch.cli._exit import fail
from apiwatch.cli._render import show_page
from apiwatch.store import Order, Page, Query, QueryError, StoreError, parse_since
from apiwatch.store.base import MAX_LIMIT

ORDERS = ("newest", "oldest")


def time_range(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """`--since` / `--until` (`48h`, `7d`, a date, an RFC 3339 time) as datetimes; exits 2."""
    now = datetime.now(UTC)
    try:
        return (parse_since(since, now) if since else None,
                parse_since(until, now) if until else None)
    except QueryError as exc:
        fail(str(exc))


def page_options(func: click.decorators.FC) -> click.decorators.FC:
    """`--since --until --order --limit --cursor --json`, shared with `timeline`."""
    for option in reversed((
        click.option("--since", default="48h", show_default=True,
                     help="Oldest event: 15m, 48h, 7d, a date or an RFC 3339 time."),
        click.option("--until", help="Newest event (exclusive), same forms as --since."),
        click.option("--order", type=click.Choice(ORDERS), default="newest", show_default=True),
        click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=100,
                     show_default=True, help="Events per page."),
        click.option("--cursor", help="Continue after the page that printed this cursor."),
        click.option("--json", "as_json", is_flag=True,
                     help="One JSON object per line: {index, event}."),
    )):
        func = option(func)
    return func


@main.command()
@click.argument("filter_text", metavar="FILTER", default="")
@page_options
@data_options
def query(*, filter_text: str, since: str, until: str | None, order: Order, limit: int,
          cursor: str | None, as_json: bool, data: Path | None,
          config_path: Path | None) -> None:
    """Search stored events (e.g. 'event.action:authn_login_fail source.ip:10.0.0.0/8')."""
    start, end = time_range(since, until)
    try:
        q = Query.parse(filter_text, since=start, until=end, order=order, limit=limit,
                        cursor=cursor)
    except QueryError as exc:
        fail(f"bad filter: {exc}")
    with open_collector(load(config_path, data)) as collector:
        try:
            page: Page = collector.store.query(q)
        except (QueryError, StoreError) as exc:
            fail(str(exc))
        record_read(collector.pipeline, "query", len(page.events), query=filter_text,
                    since=since)
    show_page(page, as_json=as_json)
