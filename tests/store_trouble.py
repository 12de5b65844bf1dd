"""An index store that fails on demand, for the tests of what the collector does then."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class StorageTrouble:
    """Makes a real SQLite index store's inserts fail while on, as a failing disk would: a
    trigger on `events` raises (SQLite aborts the statement, the store rolls back its
    transaction). Switched from a second connection, which takes the write lock only between
    the store's transactions; the store file must exist."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.executescript("""
            CREATE TABLE trouble (on_ INTEGER);
            CREATE TRIGGER trouble BEFORE INSERT ON events WHEN EXISTS (SELECT 1 FROM trouble)
            BEGIN SELECT RAISE(ABORT, 'disk I/O error (test)'); END;
        """)

    def switch(self, on: bool) -> None:
        self._db.execute("INSERT INTO trouble VALUES (1)" if on else "DELETE FROM trouble")

    def close(self) -> None:
        self._db.close()
