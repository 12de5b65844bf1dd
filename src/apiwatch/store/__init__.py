"""The index store: events by ledger index, searchable; SQLite embedded, PostgreSQL to scale.

`open_store("events.db")`, `open_store("sqlite:///var/lib/apiwatch/events.db")` or
`open_store("postgresql://user@host/db")`. The store is derived from the ledger and can be
rebuilt from it (`apiwatch reindex`).
"""

from __future__ import annotations

from pathlib import Path

from apiwatch.store.base import ActorKind, Order, Page, Query, Store, Stored
from apiwatch.store.errors import QueryError, StoreError
from apiwatch.store.query import Node, parse_filter, parse_since

__all__ = [
    "ActorKind",
    "Node",
    "Order",
    "Page",
    "Query",
    "QueryError",
    "Store",
    "StoreError",
    "Stored",
    "open_store",
    "parse_filter",
    "parse_since",
]


def open_store(url_or_path: str | Path) -> Store:
    """Open the store a path, `sqlite:///path` or `postgresql://` DSN names."""
    target = str(url_or_path)
    if target.startswith(("postgresql://", "postgres://")):
        # Imported here: psycopg is an optional dependency (the `postgres` extra).
        from apiwatch.store.postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore(target)
    if target.startswith("sqlite://"):
        target = target.removeprefix("sqlite://")
        if not target.startswith("/"):
            raise StoreError(f"a SQLite URL is sqlite:///path, not {url_or_path!r}")
    elif "://" in target:
        raise StoreError(f"unknown store URL scheme in {url_or_path!r}")
    from apiwatch.store.sqlite import SqliteStore  # noqa: PLC0415

    return SqliteStore(target)
