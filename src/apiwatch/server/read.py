"""The read side: stored events, source status, and the ledger's checkpoint and proofs.

GET /v1/events, /v1/timeline and /v1/sources take an API token of any role
(`apiwatch.server.api_auth`); every read of events is itself recorded (`data_access`). The
checkpoint and the RFC 6962 proofs are public, as in any transparency log: they carry hashes
only, and anyone holding a record can check it with them.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from anyio import to_thread
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from apiwatch.collector.pipeline import Pipeline
from apiwatch.collector.sources import SourceState
from apiwatch.events import format_timestamp
from apiwatch.ledger.errors import LedgerError
from apiwatch.server.api_auth import ApiAuth
from apiwatch.server.audit import Audit
from apiwatch.server.errors import HttpError, json_response
from apiwatch.store.base import ActorKind, Page, Query
from apiwatch.store.errors import QueryError
from apiwatch.store.query import parse_since

T = TypeVar("T")
ACTOR_KINDS = ("ip", "user", "key")


class ReadEndpoints:
    """Handlers of the GET routes under /v1."""

    def __init__(
        self,
        pipeline: Pipeline,
        auth: ApiAuth,
        sources: list[str],
        audit: Audit,
    ) -> None:
        self.pipeline = pipeline
        self.auth = auth
        self.sources = sources
        self.audit = audit

    async def events(self, request: Request) -> Response:
        """GET /v1/events?q=&since=&until=&order=&limit=&cursor= (the store's filter language)."""
        reader = await self.auth.viewer(request)
        query = _query(request.query_params)
        page: Page = await _run(self.pipeline.store.query, query)
        await self.audit.accessed(request, reader, "event", len(page.events))
        items = [{"index": stored.index, "event": stored.event} for stored in page.events]
        return json_response({"events": items, "next_cursor": page.cursor})

    async def timeline(self, request: Request) -> Response:
        """GET /v1/timeline?kind=ip|user|key&value=&since=&until=&order=&limit=&cursor=: what
        one actor did (`apiwatch timeline` over HTTP)."""
        reader = await self.auth.viewer(request)
        params = request.query_params
        kind, value = params.get("kind", ""), params.get("value", "")
        if kind not in ACTOR_KINDS or not value:
            raise HttpError(400, "bad_query", "give kind=ip|user|key and a value")
        query = _query(params)
        page: Page = await _run(lambda: self.pipeline.store.timeline(
            cast(ActorKind, kind), value, since=query.since, until=query.until,
            order=query.order, limit=query.limit, cursor=query.cursor))
        await self.audit.accessed(request, reader, "event", len(page.events))
        items = [{"index": stored.index, "event": stored.event} for stored in page.events]
        return json_response({"events": items, "next_cursor": page.cursor})

    async def source_status(self, request: Request) -> Response:
        """GET /v1/sources: each source's last event, rate, sequence gaps and duplicates."""
        await self.auth.viewer(request)
        now = time.time_ns()
        states = dict(self.pipeline.tracker.states)
        names = sorted({*self.sources, *states})
        return json_response(
            {"sources": {name: _status(states.get(name), now) for name in names}}
        )

    async def checkpoint(self, request: Request) -> Response:
        """GET /v1/ledger/checkpoint: the newest signed note (C2SP tlog-checkpoint), as text."""
        note = await _run(self.pipeline.ledger.latest_checkpoint)
        if note is None:
            raise HttpError(404, "no_checkpoint", "no checkpoint has been signed yet")
        return Response(note, media_type="text/plain; charset=utf-8")

    async def inclusion(self, request: Request) -> Response:
        """GET /v1/ledger/proof/inclusion?index=&size=: an RFC 6962 audit path (base64)."""
        index = _int_param(request, "index")
        size = _int_param(request, "size")
        ledger = self.pipeline.ledger
        if not 0 <= index < size <= ledger.size:
            raise HttpError(400, "bad_range", f"need 0 <= index < size <= {ledger.size}")
        hashes = await _run(ledger.inclusion_proof, index, size)
        return json_response({"index": index, "size": size, "hashes": _b64(hashes)})

    async def consistency(self, request: Request) -> Response:
        """GET /v1/ledger/proof/consistency?first=&second=: an RFC 6962 consistency proof."""
        first = _int_param(request, "first")
        second = _int_param(request, "second")
        ledger = self.pipeline.ledger
        if not 0 < first <= second <= ledger.size:
            raise HttpError(400, "bad_range", f"need 0 < first <= second <= {ledger.size}")
        hashes = await _run(ledger.consistency_proof, first, second)
        return json_response({"first": first, "second": second, "hashes": _b64(hashes)})


async def _run(func: Callable[..., T], *args: Any) -> T:
    """Run blocking store or ledger work off the event loop; a ledger refusal is a 400."""
    try:
        return await to_thread.run_sync(func, *args)
    except QueryError as exc:
        raise HttpError(400, "bad_query", str(exc)) from None
    except LedgerError as exc:
        raise HttpError(400, "bad_range", str(exc)) from None


def _query(params: QueryParams) -> Query:
    now = datetime.now(UTC)
    try:
        since = parse_since(params["since"], now) if params.get("since") else None
        until = parse_since(params["until"], now) if params.get("until") else None
        order = params.get("order", "newest")
        if order not in ("newest", "oldest"):
            raise QueryError("order must be newest or oldest")
        limit_text = params.get("limit", "100")
        if not limit_text.isdigit():
            raise QueryError("limit must be a whole number")
        return Query.parse(
            params.get("q", ""), since=since, until=until, order=order,
            limit=int(limit_text), cursor=params.get("cursor") or None,
        )
    except QueryError as exc:
        raise HttpError(400, "bad_query", str(exc)) from None


def _int_param(request: Request, name: str) -> int:
    text = request.query_params.get(name, "")
    if not text.isdigit():
        raise HttpError(400, "bad_request", f"query parameter {name!r} must be a whole number")
    return int(text)


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode("ascii") for h in hashes]


def _status(state: SourceState | None, now_ns: int) -> dict[str, Any]:
    if state is None:
        return {"last_event_time": None, "last_received": None, "events_last_minute": 0,
                "events": 0, "duplicates": 0, "gaps": 0, "missing": 0, "high_seq": 0}
    received = format_timestamp(state.last_received_ns) if state.last_received_ns else None
    return {
        "last_event_time": state.last_event_time or None,
        "last_received": received,
        "events_last_minute": _retry(lambda: state.events_last_minute(now_ns)),
        "events": state.events,
        "duplicates": state.duplicates,
        "gaps": state.gaps,
        "missing": len(state.missing),
        "high_seq": state.high,
    }


def _retry(func: Callable[[], T]) -> T:
    """Call `func`, again if an ingest thread changed the dict it iterates (RuntimeError)."""
    for _ in range(10):
        try:
            return func()
        except RuntimeError:
            continue
    return func()
