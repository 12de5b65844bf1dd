"""The `Store` protocol and what its backends share: queries, pages, cursors, hot fields.

The store is derived data: the ledger is the record of truth, and `apiwatch reindex` rebuilds the
store from it. Every stored event therefore keeps its ledger index, which is also the key that
makes `insert` idempotent.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import repeat
from typing import Any, Literal, Protocol

from apiwatch.events.model import Event
from apiwatch.store._time import events_micros, to_micros
from apiwatch.store.errors import QueryError, StoreError
from apiwatch.store.query import And, Leaf, Node, Not, Or, parse_filter

Order = Literal["newest", "oldest"]
ActorKind = Literal["ip", "user", "key"]

#: Hot fields: stored as indexed columns (name in both backends) rather than read from the JSON.
HOT: dict[str, str] = {
    "source.ip": "source_ip",
    "user.name": "user_name",
    "apiwatch.api_key.id": "api_key_id",
    "event.action": "action",
    "event.outcome": "outcome",
    "apiwatch.route": "route",
    "apiwatch.tenant": "tenant",
    "apiwatch.source": "source",
}
#: The actor a timeline follows, by the field that names it.
ACTORS: dict[str, str] = {"ip": "source.ip", "user": "user.name", "key": "apiwatch.api_key.id"}
MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Stored:
    """An event as the store returns it, with its ledger index."""

    index: int
    event: Event


@dataclass(frozen=True)
class Page:
    """One page of results; `cursor` fetches the next page, None when there is none."""

    events: list[Stored]
    cursor: str | None


@dataclass(frozen=True)
class Query:
    """A filter (AST), a time range [since, until), an order and a page size and position."""

    filter: Node | None = None
    since: datetime | None = None
    until: datetime | None = None
    order: Order = "newest"
    limit: int = 100
    cursor: str | None = None

    @classmethod
    def parse(cls, text: str, **options: Any) -> Query:
        """A query whose filter is the text of the filter language."""
        return cls(filter=parse_filter(text), **options)

    def page(self, cursor: str | None) -> Query:
        """The same query positioned at `cursor`."""
        return replace(self, cursor=cursor)


class Store(Protocol):
    """The index store: events keyed by ledger index, searchable by the filter language."""

    def insert(
        self, batch: Sequence[tuple[int, Event]], encoded: Sequence[bytes] | None = None
    ) -> None:
        """Store (ledger index, event) pairs; a known index is a no-op.

        `encoded`, when given, is each event's JSON as the ledger holds it (same order as
        `batch`), stored as is rather than encoded again.
        """

    def insert_records(self, first: int, records: Sequence[bytes]) -> None:
        """`insert` of ledger records `first`, `first + 1`, ... given as the ledger holds them
        (JSON objects), as the indexer process receives them; StoreError if one is not."""

    def query(self, q: Query) -> Page:
        """Events matching `q`, one page at a time, ordered by (@timestamp, ledger index)."""

    def timeline(
        self,
        actor_kind: ActorKind,
        value: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        order: Order = "newest",
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """Events of one actor (source IP, user name or API key id), paged like `query`."""

    def count(self, q: Query) -> int:
        """How many events match `q` (its order, limit and cursor are ignored)."""

    def histogram(self, q: Query, bucket: timedelta) -> list[tuple[datetime, int]]:
        """Counts of matching events per time bucket (bucket start, count), oldest first."""

    def top(self, field: str, q: Query, n: int = 10) -> list[tuple[str, int]]:
        """The `n` most frequent values of a hot field among matching events, with counts."""

    def max_ledger_index(self) -> int | None:
        """The highest ledger index stored, None when empty (where reindex resumes)."""

    def close(self) -> None:
        """Release the connection."""


# --- shared by the backends -----------------------------------------------------------------


def encode_cursor(order: Order, ts: int, index: int) -> str:
    """An opaque cursor: the (time, ledger index) key of the last row returned.

    Keyset paging on a unique key stays stable while events arrive: a page never repeats or
    skips an event that was stored when the first page was read.
    """
    raw = f"{order[0]}{ts}.{index}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: Order) -> tuple[int, int]:
    """The (time, ledger index) key of a cursor made for `order`; QueryError if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        ts, index = raw[1:].split(".")
        if raw[0] != order[0]:
            raise ValueError(raw)
        return int(ts), int(index)
    except (ValueError, binascii.Error, UnicodeError):
        raise QueryError(f"invalid cursor for order {order!r}") from None


def check_limit(limit: int) -> None:
    """Refuse a page size outside 1..MAX_LIMIT."""
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")


def actor_field(actor_kind: str) -> str:
    """The field a timeline of `actor_kind` follows."""
    field = ACTORS.get(actor_kind)
    if field is None:
        raise QueryError(f"actor kind must be one of {sorted(ACTORS)}, not {actor_kind!r}")
    return field


def hot_field(field: str) -> str:
    """The column of a hot field; QueryError for any other field."""
    column = HOT.get(field)
    if column is None:
        raise QueryError(f"{field!r} is not a hot field; one of {sorted(HOT)}")
    return column


def canonical_ip(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in an IP field, None if the value is not a plain address."""
    if not isinstance(value, str) or "%" in value:  # scoped IPv6 has no SQL counterpart
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def timeline_value(actor_kind: str, value: str) -> tuple[str, str]:
    """The (field, stored value) a timeline looks up; an IP is put in canonical form."""
    field = actor_field(actor_kind)
    if field == "source.ip":
        address = canonical_ip(value)
        if address is None:
            raise QueryError(f"{value!r} is not an IP address")
        value = str(address)
    return field, value


def new_rows(
    batch: Sequence[tuple[int, Event]],
    known_max: int | None,
    existing: Callable[[list[int]], Iterable[int]],
) -> list[tuple[int, int, Event]]:
    """The (index, time µs, event) rows of `batch` not stored yet, first occurrence of each.

    Appends (every index above `known_max`) skip the `existing` lookup. Raises StoreError on an
    event whose `@timestamp` is missing or invalid, before anything is written.
    """
    if not batch:
        return []
    indexes, events = (list(column) for column in zip(*batch, strict=True))
    if len(set(indexes)) != len(indexes):  # keep the first of repeated indexes
        kept: dict[int, Event] = {}
        for index, event in batch:
            kept.setdefault(index, event)
        indexes, events = list(kept), list(kept.values())
    stamps = list(map(dict.get, events, repeat("@timestamp")))
    micros, stored = stamped_and_stored(indexes, stamps, known_max, existing)
    rows = list(zip(indexes, micros, events, strict=True))
    if stored:
        rows = [row for row in rows if row[0] not in stored]
    return rows


def stamped_and_stored(
    indexes: list[int],
    stamps: list[Any],
    known_max: int | None,
    existing: Callable[[list[int]], Iterable[int]],
) -> tuple[list[int], set[int]]:
    """The times in µs of `stamps` (the `@timestamp` of the events at the distinct ledger
    `indexes`, same order, at least one) and which of `indexes` are stored already: none,
    without asking `existing`, when every index is above `known_max` (appends). StoreError
    names the ledger index of the first missing or invalid timestamp."""
    micros = _micros(stamps)
    if micros is None:
        bad = next(i for i, stamp in enumerate(stamps) if _micros([stamp]) is None)
        raise StoreError(f"event at ledger index {indexes[bad]} has no valid @timestamp")
    if known_max is None or min(indexes) > known_max:
        return micros, set()
    return micros, set(existing(sorted(indexes)))


def _micros(stamps: list[Any]) -> list[int] | None:
    """`event_micros` of each of `stamps`; None if one is not a valid timestamp string."""
    if set(map(type, stamps)) != {str}:
        return None
    try:
        return events_micros(stamps)
    except ValueError:
        return None


LeafSql = Callable[[Leaf], tuple[str, list[Any]]]


def compile_filter(node: Node, leaf: LeafSql) -> tuple[str, list[Any]]:
    """SQL for a filter AST, leaves by the backend's `leaf`; NOT treats a missing field as false.

    `(x) IS NOT TRUE` rather than `NOT x`: SQL's NULL (an absent field) would otherwise make
    `NOT user.name:admin` drop every event that has no user at all.
    """
    if isinstance(node, And | Or):
        parts = [compile_filter(item, leaf) for item in node.items]
        glue = " AND " if isinstance(node, And) else " OR "
        return "(" + glue.join(sql for sql, _ in parts) + ")", [p for _, ps in parts for p in ps]
    if isinstance(node, Not):
        sql, params = compile_filter(node.item, leaf)
        return f"(({sql}) IS NOT TRUE)", params
    return leaf(node)


def build_where(
    q: Query, leaf: LeafSql, mark: str, *, paged: bool
) -> tuple[str, list[Any]]:
    """The WHERE clause (filter, time range, cursor position) over `events e`; `mark` is the
    backend's parameter placeholder."""
    clauses: list[str] = []
    params: list[Any] = []
    if q.filter is not None:
        sql, params = compile_filter(q.filter, leaf)
        clauses.append(sql)
    if q.since is not None:
        clauses.append(f"e.ts >= {mark}")
        params.append(to_micros(q.since))
    if q.until is not None:
        clauses.append(f"e.ts < {mark}")
        params.append(to_micros(q.until))
    if paged and q.cursor is not None:
        comparison = "<" if q.order == "newest" else ">"
        clauses.append(f"(e.ts, e.idx) {comparison} ({mark}, {mark})")
        params.extend(decode_cursor(q.cursor, q.order))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def order_by(order: Order) -> str:
    """The ORDER BY of a page."""
    direction = "DESC" if order == "newest" else "ASC"
    return f" ORDER BY e.ts {direction}, e.idx {direction}"


def make_page(rows: Sequence[tuple[int, int, Event]], limit: int, order: Order) -> Page:
    """A page from up to `limit + 1` (index, time, event) rows in page order."""
    cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        cursor = encode_cursor(order, rows[-1][1], rows[-1][0])
    return Page([Stored(index, event) for index, _, event in rows], cursor)


def bucket_micros(bucket: timedelta) -> int:
    """A histogram bucket width in microseconds; QueryError unless positive."""
    width = bucket // timedelta(microseconds=1)
    if width <= 0:
        raise QueryError("histogram bucket must be positive")
    return width
