"""Alerts kept in SQLite (`<data>/alerts.sqlite3`): the alerts, their history, the outbox.

One file holds the three tables so that raising an alert is one transaction: the alert row,
its `raise` history entry and one outbox row per channel commit together, and a crash leaves
either all of them or none (then the ledger replay raises the alert again). WAL mode lets
`apiwatch alerts` read and acknowledge while the collector writes.

The `slot` of an alert (rule key and its canonical group) with `suppress_until` (first event
time plus the rule's suppression window) is what keeps a replay after a restart from raising a
second alert for an episode already raised (`find_slot`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from apiwatch.alerts.lifecycle import Action, LifecycleError, Status, Transition, apply
from apiwatch.detect import Alert
from apiwatch.events import format_timestamp
from apiwatch.sqlite_file import SqliteFile

FILE_NAME = "alerts.sqlite3"
#: Group fields that name an actor, and the `apiwatch timeline` option that follows it.
TIMELINE_ACTORS = {"source.ip": "ip", "user.name": "user", "apiwatch.api_key.id": "key"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, slot TEXT NOT NULL, rule TEXT NOT NULL, title TEXT NOT NULL,
    severity TEXT NOT NULL, status TEXT NOT NULL, grp TEXT NOT NULL, tenant TEXT,
    count INTEGER NOT NULL, suppressed INTEGER NOT NULL, first_seen REAL NOT NULL,
    last_seen REAL NOT NULL, event_ids TEXT NOT NULL, reason TEXT NOT NULL,
    suppress_until REAL NOT NULL, raised_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_slot ON alerts (slot, suppress_until);
CREATE INDEX IF NOT EXISTS alerts_raised ON alerts (raised_at);
CREATE TABLE IF NOT EXISTS history (
    alert_id TEXT NOT NULL, at REAL NOT NULL, action TEXT NOT NULL, status TEXT NOT NULL,
    actor TEXT NOT NULL, comment TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_alert ON history (alert_id, at);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, alert_id TEXT NOT NULL, channel TEXT NOT NULL,
    delivered_at REAL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '', UNIQUE (alert_id, channel));
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (channel, next_at) WHERE delivered_at IS NULL;
"""
_COLUMNS = ("id, rule, title, severity, status, grp, tenant, count, suppressed, first_seen, "
            "last_seen, event_ids, reason")


def slot_of(rule_key: str, group: dict[str, Any]) -> str:
    """The dedup key of a rule's alert on one group: the rule key and the canonical group."""
    return rule_key + "\x1f" + orjson.dumps(group, option=orjson.OPT_SORT_KEYS).decode()


def timeline_link(group: dict[str, Any], first_seen: float) -> str:
    """The query API URL of the grouped actor's events, from an hour before the alert."""
    terms = []
    for name, value in sorted(group.items()):
        if value is None or isinstance(value, list | dict):
            continue
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        terms.append(f'{name}:"{text}"')
    since = format_timestamp(round((first_seen - 3600) * 1e9))
    return "/v1/events?" + urlencode({"q": " AND ".join(terms), "since": since})


def _stamp(seconds: float) -> str:
    return format_timestamp(round(seconds * 1_000_000) * 1000)


class Repository(SqliteFile):
    """The alerts database; every method is safe to call from any thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA, "synchronous=FULL")  # an acknowledged delivery stays so

    # --- raising -----------------------------------------------------------------------

    def find_slot(self, slot: str, ts: float) -> tuple[str, Status] | None:
        """The (id, status) of the alert of `slot` whose suppression window covers `ts`."""
        rows = self._query(
            "SELECT id, status FROM alerts WHERE slot = ? AND suppress_until > ? "
            "ORDER BY raised_at DESC LIMIT 1", (slot, ts))
        return (rows[0][0], rows[0][1]) if rows else None

    def add(self, alert: Alert, slot: str, suppress_until: float, channels: list[str]) -> None:
        """Store a new alert with its `raise` history entry and an outbox row per channel."""
        self.add_many([(alert, slot, suppress_until, channels)])

    def add_many(self, alerts: Sequence[tuple[Alert, str, float, list[str]]]) -> None:
        """`add` for several alerts in one transaction (one fsync for an attack's burst)."""
        now = time.time()
        with self._tx() as db:
            for alert, slot, suppress_until, channels in alerts:
                db.execute(
                    f"INSERT INTO alerts ({_COLUMNS}, slot, suppress_until, raised_at) "  # noqa: S608
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (alert.id, alert.rule, alert.title, alert.severity, "open",
                     orjson.dumps(alert.group).decode(), alert.tenant, alert.count,
                     alert.suppressed, alert.first_seen, alert.last_seen,
                     orjson.dumps(alert.event_ids).decode(), alert.reason, slot,
                     suppress_until, now))
                db.execute("INSERT INTO history VALUES (?, ?, 'raise', 'open', 'apiwatch', '')",
                           (alert.id, now))
                db.executemany(
                    "INSERT INTO outbox (alert_id, channel, next_at) VALUES (?, ?, ?)",
                    [(alert.id, channel, now) for channel in channels])

    def merge(self, alert: Alert) -> None:
        """Fold the engine's newer counts of an alert into its row (never lowering them)."""
        with self._tx() as db:
            db.execute(
                "UPDATE alerts SET count = max(count, ?), suppressed = max(suppressed, ?), "
                "last_seen = max(last_seen, ?), event_ids = CASE WHEN json_array_length("
                "event_ids) < json_array_length(?) THEN ? ELSE event_ids END WHERE id = ?",
                (alert.count, alert.suppressed, alert.last_seen,
                 ids := orjson.dumps(alert.event_ids).decode(), ids, alert.id))

    # --- reading and the lifecycle -----------------------------------------------------

    def get(self, alert_id: str) -> dict[str, Any] | None:
        """The alert as its JSON object (with history and timeline link), or None."""
        rows = self._query(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?",  # noqa: S608
                           (alert_id,))
        return self._json(rows[0]) if rows else None

    def select(self, *, status: str | None = None, severity: str | None = None,
             rule: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Alerts, newest raised first, filtered by exact status, severity and rule id."""
        where, params = [], []
        for column, value in (("status", status), ("severity", severity), ("rule", rule)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM alerts {clause} "  # noqa: S608
            "ORDER BY raised_at DESC, id DESC LIMIT ?", (*params, limit))
        return [self._json(row) for row in rows]

    def raised_per_rule(self, since: float) -> dict[str, int]:
        """How many alerts each rule id raised at or after `since` (unix seconds)."""
        rows = self._query("SELECT rule, count(*) FROM alerts WHERE raised_at >= ? "
                           "GROUP BY rule", (since,))
        return dict(rows)

    def transition(self, alert_id: str, action: Action, actor: str,
                   comment: str = "") -> dict[str, Any]:
        """Acknowledge, resolve or comment on an alert; its JSON after the change.

        Raises LifecycleError for an unknown alert or a move its status does not allow.
        """
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT status FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None:
                raise LifecycleError(f"no alert {alert_id!r}")
            status = apply(row[0], action)
            db.execute("UPDATE alerts SET status = ? WHERE id = ?", (status, alert_id))
            db.execute("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?)",
                       (alert_id, now, action, status, actor, comment))
        found = self.get(alert_id)
        assert found is not None  # written just above in this transaction
        return found

    def history(self, alert_id: str) -> list[Transition]:
        """The alert's transitions, oldest first."""
        rows = self._query("SELECT action, status, actor, at, comment FROM history "
                           "WHERE alert_id = ? ORDER BY at, rowid", (alert_id,))
        return [Transition(*row) for row in rows]

    def _json(self, row: tuple[Any, ...]) -> dict[str, Any]:
        (alert_id, rule, title, severity, status, grp, tenant, count, suppressed, first,
         last, event_ids, reason) = row
        group = orjson.loads(grp)
        out: dict[str, Any] = {
            "id": alert_id, "rule": rule, "title": title, "severity": severity,
            "status": status, "group": group, "count": count, "suppressed": suppressed,
            "first_seen": _stamp(first), "last_seen": _stamp(last),
            "event_ids": orjson.loads(event_ids), "reason": reason,
            "timeline": timeline_link(group, first),
            "history": [t.to_json() for t in self.history(alert_id)],
        }
        if tenant is not None:
            out["tenant"] = tenant
        return out

    # --- the outbox ----------------------------------------------------------------------

    def due(self, channel: str, now: float, limit: int = 50) -> list[tuple[int, str, int]]:
        """Undelivered (outbox id, alert id, attempts) of `channel` due by `now`, oldest first."""
        return self._query(
            "SELECT id, alert_id, attempts FROM outbox WHERE channel = ? AND delivered_at IS "
            "NULL AND next_at <= ? ORDER BY next_at, id LIMIT ?", (channel, now, limit))

    def next_due(self, channel: str) -> float | None:
        """When the earliest undelivered row of `channel` is due, None if there is none."""
        rows = self._query("SELECT min(next_at) FROM outbox WHERE channel = ? AND "
                           "delivered_at IS NULL", (channel,))
        value: float | None = rows[0][0]
        return value

    def delivered(self, outbox_id: int) -> None:
        """Mark a delivery done (durably: it is never sent again, even after a restart)."""
        with self._tx() as db:
            db.execute("UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 "
                       "WHERE id = ?", (time.time(), outbox_id))

    def failed(self, outbox_id: int, next_at: float, error: str) -> None:
        """Count a failed attempt and schedule the next one."""
        with self._tx() as db:
            db.execute("UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ? "
                       "WHERE id = ?", (next_at, error[:500], outbox_id))

    def outbox_rows(self, alert_id: str) -> list[dict[str, Any]]:
        """The deliveries of one alert: channel, delivered (bool), attempts, last error."""
        rows = self._query("SELECT channel, delivered_at, attempts, last_error FROM outbox "
                           "WHERE alert_id = ? ORDER BY id", (alert_id,))
        return [{"channel": c, "delivered": d is not None, "attempts": a, "last_error": e}
                for c, d, a, e in rows]
