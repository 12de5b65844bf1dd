"""Custom dashboards: named lists of panels, each a saved query shown one way.

Kept beside the index store in `<data>/dashboards.sqlite3`, and exported / imported as JSON
(`{"name": ..., "shared": bool, "panels": [{"title", "kind", "query", "field", "range"}]}`)
so that teams can keep them in git. A shared dashboard is visible to every user; only its
owner or an admin changes it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from apiwatch.errors import ApiwatchError
from apiwatch.sqlite_file import SqliteFile
from apiwatch.store import Query, QueryError, parse_since
from apiwatch.store.base import HOT

FILE_NAME = "dashboards.sqlite3"
KINDS = ("timeseries", "top", "table", "number")
RANGES = ("15m", "1h", "6h", "24h", "7d")
MAX_PANELS = 24

_SCHEMA = """
CREATE TABLE IF NOT EXISTS boards (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, shared INTEGER NOT NULL, spec TEXT NOT NULL,
    updated REAL NOT NULL);
"""


class BoardError(ApiwatchError):
    """A dashboard or panel that does not validate, or one that does not exist."""


@dataclass(frozen=True)
class Panel:
    """One saved query and how to show it."""

    title: str
    kind: str
    query: str = ""
    field: str = ""
    range: str = "1h"

    @classmethod
    def from_json(cls, data: Any) -> Panel:
        """A panel from its JSON object; BoardError naming what is wrong."""
        if not isinstance(data, dict):
            raise BoardError("a panel must be a JSON object")
        values = {k: data.get(k, "") for k in ("title", "kind", "query", "field", "range")}
        if not all(isinstance(v, str) for v in values.values()):
            raise BoardError("panel title, kind, query, field and range must be strings")
        panel = cls(**{k: v.strip() for k, v in values.items()})
        panel.check()
        return panel

    def check(self) -> None:
        """Raise BoardError if the panel cannot be shown."""
        if not 1 <= len(self.title) <= 100:
            raise BoardError("a panel title needs 1 to 100 characters")
        if self.kind not in KINDS:
            raise BoardError(f"panel kind must be one of {', '.join(KINDS)}")
        if self.range not in RANGES:
            raise BoardError(f"panel range must be one of {', '.join(RANGES)}")
        if self.kind == "top" and self.field not in HOT:
            raise BoardError(f"a top panel needs a field among {', '.join(sorted(HOT))}")
        if len(self.query) > 2000:
            raise BoardError("a panel query is at most 2000 characters")
        try:
            Query.parse(self.query)
        except QueryError as exc:
            raise BoardError(f"panel {self.title!r}: {exc}") from None

    def start(self, now: datetime) -> datetime:
        """The start of the panel's time range before `now`."""
        return parse_since(self.range, now)


@dataclass
class Board:
    """A dashboard: its id, name, owner, whether it is shared, and its panels in order."""

    id: str
    name: str
    owner: str
    shared: bool = False
    panels: list[Panel] = field(default_factory=list)

    def export(self) -> dict[str, Any]:
        """The portable JSON form (no id, no owner)."""
        return {"name": self.name, "shared": self.shared,
                "panels": [asdict(p) for p in self.panels]}


def parse_export(data: Any, owner: str) -> Board:
    """A new board from an exported JSON object; BoardError if it does not validate."""
    if not isinstance(data, dict):
        raise BoardError("a dashboard must be a JSON object")
    name, panels = data.get("name"), data.get("panels", [])
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        raise BoardError("a dashboard name needs 1 to 100 characters")
    if not isinstance(panels, list) or len(panels) > MAX_PANELS:
        raise BoardError(f"panels must be a list of at most {MAX_PANELS}")
    return Board(new_id(), name.strip(), owner, bool(data.get("shared", False)),
                 [Panel.from_json(p) for p in panels])


def new_id() -> str:
    """A fresh, unguessable dashboard id."""
    return secrets.token_urlsafe(9)


class Boards(SqliteFile):
    """The dashboards database; every method is safe to call from any thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    def save(self, board: Board) -> None:
        """Insert or replace `board`."""
        if len(board.panels) > MAX_PANELS:
            raise BoardError(f"a dashboard holds at most {MAX_PANELS} panels")
        spec = orjson.dumps(board.export()).decode()
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO boards VALUES (?, ?, ?, ?, ?)",
                               (board.id, board.owner, int(board.shared), spec, time.time()))

    def get(self, board_id: str, viewer: str) -> Board | None:
        """The board if it exists and `viewer` may see it (owner, or shared)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, owner, spec FROM boards WHERE id = ? AND (shared = 1 OR owner = ?)",
                (board_id, viewer)).fetchone()
        return None if row is None else _board(*row)

    def visible(self, viewer: str) -> list[Board]:
        """Boards `viewer` may see, by name."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, owner, spec FROM boards WHERE shared = 1 OR owner = ?",
                (viewer,)).fetchall()
        return sorted((_board(*row) for row in rows), key=lambda b: b.name.lower())

    def delete(self, board_id: str) -> None:
        """Remove a board."""
        with self._lock:
            self._conn.execute("DELETE FROM boards WHERE id = ?", (board_id,))


def _board(board_id: str, owner: str, spec: str) -> Board:
    data = orjson.loads(spec)
    return Board(board_id, data["name"], owner, data["shared"],
                 [Panel(**p) for p in data["panels"]])
