"""Which detection rules are switched off: `<data>/settings.sqlite3`, kept across restarts.

An admin switches a rule off or on in the dashboard's rules page; `Detection` reads the set
when it starts (before replaying the ledger, so a rule that is off stays quiet in the replay
too) and applies each change to the running engine.
"""

from __future__ import annotations

import time
from pathlib import Path

from apiwatch.sqlite_file import SqliteFile

FILE_NAME = "settings.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS disabled_rules (
    rule TEXT PRIMARY KEY, actor TEXT NOT NULL, at REAL NOT NULL);
"""


class RuleSwitches(SqliteFile):
    """The ids of rules switched off; every method is safe to call from any thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    def disabled(self) -> frozenset[str]:
        """The ids of the rules switched off."""
        with self._lock:
            rows = self._conn.execute("SELECT rule FROM disabled_rules").fetchall()
        return frozenset(row[0] for row in rows)

    def set(self, rule_id: str, enabled: bool, actor: str) -> bool:
        """Switch `rule_id` on or off; whether that changed anything."""
        with self._lock:
            if enabled:
                cursor = self._conn.execute("DELETE FROM disabled_rules WHERE rule = ?",
                                            (rule_id,))
            else:
                cursor = self._conn.execute(
                    "INSERT OR IGNORE INTO disabled_rules VALUES (?, ?, ?)",
                    (rule_id, actor, time.time()))
        return cursor.rowcount > 0

