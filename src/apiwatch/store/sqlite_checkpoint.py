"""Checkpoints of the SQLite store's WAL, the bulk of each in a thread of its own.

A checkpoint copies the pages of the write-ahead log back into the database file and fsyncs
it. SQLite's automatic checkpoint runs inside the COMMIT that takes the log past
`wal_autocheckpoint` pages, so the writer waited for all of it: 170-250 ms for 80 MiB of log
on this project's VMs, 15% of the indexer's time under a steady ingest
(`bench/ingest_bench.py`), and every acknowledgement waiting on it that much later.

Here the writer counts the rows it commits; every CHECKPOINT_ROWS rows a thread runs a
PASSIVE checkpoint on a connection of its own. SQLite lets a checkpointer and a writer work at
once (PASSIVE takes no lock a writer needs) and `sqlite3` releases the GIL while it copies and
syncs, so the bulk of the copy overlaps the writer's next batches, on the other core. What the
writer committed meanwhile is copied by the writer itself, right after its next commit
(`committed`): a short checkpoint with no commit in between, so that its next transaction
starts the log again from the beginning, as after an automatic checkpoint, and the file does
not grow. The writer keeps its automatic checkpoint at SAFETY_PAGES, far beyond where the
thread starts, in case neither can finish (a reader holding an old snapshot, say).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

#: Rows committed between checkpoints: about 55 MiB of log for 600-byte events.
CHECKPOINT_ROWS = 50_000
#: The writer's own automatic checkpoint, in pages of the log (320 MiB of 16 KiB pages),
#: reached only if the checkpoints here cannot finish.
SAFETY_PAGES = 20_000


class Checkpointer:
    """Checkpoints the WAL of the SQLite file at `path`: the bulk in a daemon thread, the
    tail on the writer's connection (`committed`)."""

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._changed = threading.Condition()
        self._rows = 0  # committed since the last checkpoint began
        self._wanted = False
        self._tail = False  # the thread copied the log up to a point: the writer finishes
        self._closed = False
        self._thread: threading.Thread | None = None

    def committed(self, rows: int, db: sqlite3.Connection) -> None:
        """After the writer's commit of `rows` rows on `db`: copy the log's tail if the thread
        has copied the rest, start the thread once enough rows have been committed."""
        if self._tail:
            self._tail = False
            # A failure leaves the log as it is: the next checkpoint, or the safety net.
            with contextlib.suppress(sqlite3.Error):
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self._rows += rows
        if self._rows < CHECKPOINT_ROWS:
            return
        self._rows = 0
        with self._changed:
            self._wanted = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="apiwatch-store-checkpoint", daemon=True
                )
                self._thread.start()
            self._changed.notify()

    def close(self) -> None:
        """Let a running checkpoint finish and stop the thread."""
        with self._changed:
            self._closed = True
            self._changed.notify()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                with self._changed:
                    while not (self._wanted or self._closed):
                        self._changed.wait()
                    if self._closed:
                        return
                    self._wanted = False
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self._tail = True
        finally:
            with contextlib.suppress(sqlite3.Error):
                db.close()
