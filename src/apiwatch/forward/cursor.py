"""Per-destination cursors over the ledger, kept in `<data>/forward.sqlite3`.

The ledger is the queue: a destination's cursor is the index of the next record to send. It
moves only after the receiver accepted a batch, and is committed with `synchronous=FULL`, so
after a crash or restart a batch is sent again at worst (at least once), never skipped.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

FILE_NAME = "forward.sqlite3"


class Cursors:
    """The next ledger index to send, per destination name (0 for a new destination)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS cursor "
                         "(destination TEXT PRIMARY KEY, next_index INTEGER NOT NULL)")

    def get(self, destination: str) -> int:
        """The index of the next record to send to `destination`."""
        with self._lock:
            row = self._db.execute("SELECT next_index FROM cursor WHERE destination = ?",
                                   (destination,)).fetchone()
        return int(row[0]) if row else 0

    def set(self, destination: str, next_index: int) -> None:
        """Record that every record before `next_index` was accepted by `destination`."""
        with self._lock:
            self._db.execute(
                "INSERT INTO cursor VALUES (?, ?) ON CONFLICT (destination) "
                "DO UPDATE SET next_index = excluded.next_index", (destination, next_index))

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
