"""A small SQLite database file shared by threads: the alerts, accounts, dashboards and
settings databases of the collector are each one of these."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class SqliteFile:
    """One connection behind one lock (WAL, a 10 s busy timeout); every method is safe to call
    from any thread. Subclasses add the queries."""

    def __init__(self, path: Path, schema: str, *pragmas: str) -> None:
        """Open (or create) `path`, apply `pragmas` (`"synchronous=FULL"`...), run `schema`."""
        self.path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                     timeout=10)
        self._lock = threading.Lock()
        with self._lock:
            for pragma in ("journal_mode=WAL", *pragmas):
                self._conn.execute(f"PRAGMA {pragma}")
            self._conn.executescript(schema)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE, so checks made inside it hold until COMMIT
        (another process, `apiwatch users` say, may write the same file)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
