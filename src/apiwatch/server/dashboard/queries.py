"""What the pages show, computed from the index store, the alerts and the sources' state.

Plain blocking functions (the routes run them in a worker thread); every value returned is
raw data for the templates, which escape it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from apiwatch.alerts import Repository
from apiwatch.collector.pipeline import Pipeline
from apiwatch.collector.sources import SourceState
from apiwatch.detect import SEVERITIES
from apiwatch.events import Event, format_timestamp
from apiwatch.ledger.layout import CHECKPOINTS_DIR, LATEST
from apiwatch.store import Query, Store, parse_since

#: Columns of event tables: (heading, field).
COLUMNS = (
    ("time", "@timestamp"), ("action", "event.action"), ("outcome", "event.outcome"),
    ("source IP", "source.ip"), ("user", "user.name"), ("method", "http.request.method"),
    ("path", "url.path"), ("query", "url.query"), ("status", "http.response.status_code"),
    ("user agent", "user_agent.original"), ("source", "apiwatch.source"),
)
#: The hot fields an actor page can follow, by actor kind.
ACTOR_FIELDS = {"ip": "source.ip", "user": "user.name", "key": "apiwatch.api_key.id"}
TOP_FIELDS = (("IPs", "source.ip"), ("users", "user.name"), ("API keys", "apiwatch.api_key.id"),
              ("routes", "apiwatch.route"))
FAILED_AUTH = "event.action:authn_login_fail OR event.action:authn_token_invalid"
#: A source that sent nothing for this long is shown as silent.
SILENT_SECONDS = 300.0


def cell(value: object) -> str:
    """An event value as text for a table cell (lists joined, absent as empty)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def since(text: str, default: str = "1h") -> datetime:
    """The start of a time range from its text (`15m`, `24h`, a date); QueryError if bad."""
    return parse_since(text or default, datetime.now(UTC))


def series(store: Store, q: Query, start: datetime, bucket: timedelta) -> dict[str, Any]:
    """A histogram as chart data: x in unix seconds, y counts, empty buckets filled with 0."""
    counts = {at.timestamp(): n for at, n in store.histogram(q, bucket)}
    step = bucket.total_seconds()
    first = start.timestamp() // step * step
    xs = [first + i * step for i in range(int((time.time() - first) // step) + 1)]
    return {"x": xs, "y": [counts.get(x, 0) for x in xs]}


def overview(pipeline: Pipeline, repository: Repository | None, sources: Iterable[str],
             start: datetime) -> dict[str, Any]:
    """Everything the overview page shows for the range from `start` to now."""
    store = pipeline.store
    bucket = timedelta(minutes=1) if time.time() - start.timestamp() <= 6 * 3600 \
        else timedelta(hours=1)
    outcomes = {
        outcome: series(store, Query.parse(f"event.outcome:{outcome}", since=start), start,
                        bucket)
        for outcome in ("success", "failure", "unknown")
    }
    failures = Query.parse("event.outcome:failure", since=start)
    return {
        "outcomes": outcomes,
        "failed_auth": series(store, Query.parse(FAILED_AUTH, since=start), start, bucket),
        "actions": store.top("event.action", Query(since=start), 10),
        "top": [(label, field, store.top(field, failures, 10)) for label, field in TOP_FIELDS],
        "total": store.count(Query(since=start)),
        "alerts": open_by_severity(repository),
        "sources": source_rows(pipeline, sources),
        "ledger": ledger_status(pipeline),
    }


def open_by_severity(repository: Repository | None) -> list[tuple[str, int]]:
    """Open alerts counted per severity, most severe first."""
    if repository is None:
        return []
    counts = Counter(a["severity"] for a in repository.select(status="open", limit=10_000))
    return [(s, counts.get(s, 0)) for s in reversed(SEVERITIES)]


def ledger_status(pipeline: Pipeline) -> dict[str, Any]:
    """Ledger size, store lag and the age of the newest signed checkpoint."""
    size = pipeline.ledger.size
    highest = pipeline.store.max_ledger_index()
    age = None
    latest = pipeline.ledger.directory / CHECKPOINTS_DIR / LATEST
    with contextlib.suppress(FileNotFoundError):  # nothing signed yet
        age = round(time.time() - os.stat(latest).st_mtime)
    return {"size": size, "lag": size - (0 if highest is None else highest + 1),
            "checkpoint_age": age}


def source_rows(pipeline: Pipeline, configured: Iterable[str]) -> list[dict[str, Any]]:
    """Each source's last event, rate, sequence gaps and silence."""
    now = time.time_ns()
    states: Mapping[str, SourceState] = dict(pipeline.tracker.states)
    rows = []
    for name in sorted({*configured, *states}):
        state = states.get(name)
        if state is None or not state.last_received_ns:
            rows.append({"name": name, "last_received": None, "rate": 0, "events": 0,
                         "gaps": 0, "missing": 0, "duplicates": 0, "silent": True})
            continue
        idle = (now - state.last_received_ns) / 1e9
        rows.append({
            "name": name, "last_received": format_timestamp(state.last_received_ns),
            "rate": _rate(state, now),
            "events": state.events, "gaps": state.gaps, "missing": len(state.missing),
            "duplicates": state.duplicates, "silent": idle > SILENT_SECONDS,
        })
    return rows


def _rate(state: SourceState, now_ns: int) -> int:
    """Events in the last minute; again if an ingest thread changed the dict meanwhile."""
    for _ in range(10):
        with contextlib.suppress(RuntimeError):
            return state.events_last_minute(now_ns)
    return 0


def actor(pipeline: Pipeline, repository: Repository | None, kind: str, value: str,
          *, start: datetime, cursor: str | None) -> dict[str, Any]:
    """One actor's timeline page, the objects it read and the alerts about it."""
    page = pipeline.store.timeline(kind, value, since=start, limit=100,  # type: ignore[arg-type]
                                   cursor=cursor)
    objects: Counter[tuple[str, str]] = Counter()
    for stored in page.events:
        kind_of = stored.event.get("apiwatch.object.type")
        ids = stored.event.get("apiwatch.object.ids") or []
        for object_id in ids if isinstance(ids, list) else [ids]:
            objects[(str(kind_of or ""), str(object_id))] += 1
    field = ACTOR_FIELDS[kind]
    alerts = [] if repository is None else [
        a for a in repository.select(limit=1000) if str(a["group"].get(field)) == value]
    return {"events": [s.event for s in page.events], "cursor": page.cursor,
            "objects": objects.most_common(50), "alerts": alerts}


def alert_events(store: Store, event_ids: list[str]) -> list[Event]:
    """The stored events behind an alert (the first 50 of its event ids)."""
    ids = [i for i in event_ids[:50] if isinstance(i, str)]
    if not ids:
        return []
    text = " OR ".join('event.id:"{}"'.format(i.replace("\\", "\\\\").replace('"', '\\"'))
                       for i in ids)
    return [s.event for s in store.query(Query.parse(text, limit=50)).events]
