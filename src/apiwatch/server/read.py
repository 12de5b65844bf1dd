"""The read side: stored events, source status, and the ledger's checkpoint and proofs.

GET /v1/events and /v1/sources take a read token (`[server] read_token`); every read of events
is itself recorded (`data_access`). The checkpoint and the RFC 6962 proofs are public, as in any
transparency log: they carry hashes only, and anyone holding a record can check it with them.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from anyio import to_thread
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from apiwatch.collector.pipeline import Pipeline
from apiwatch.collector.sources import SourceState
from apiwatch.events import format_timestamp
from apiwatch.ledger.errors import LedgerError
from apiwatch.server.audit import Audit
from apiwatch.server.auth import TokenTable, bearer_token
from apiwatch.server.errors import HttpError, json_response
from apiwatch.server.metrics import Metrics
from apiwatch.store.base import Page, Query
from apiwatch.store.errors import QueryError
from apiwatch.store.query import parse_since

T = TypeVar("T")


class ReadEndpoints:
    """Handlers of the GET routes under /v1."""

    def __init__(
        self,
        pipeline: Pipeline,
        readers: TokenTable,
        sources: list[str],
        metrics: Metrics,
        audit: Audit,
    ) -> None:
        self.pipeline = pipeline
        self.readers = readers
        self.sources = sources
        self.metrics = metrics
        self.audit = audit

    async def _reader(self, request: Request) -> str:
        """The name of the authenticated reader; a refusal is recorded like any other."""
        try:
            if not self.readers:
                raise HttpError(403, "reads_disabled", "no [server] read_token is configured")
            token = bearer_token(request.headers.get("authorization"))
            if token is None:
                raise HttpError(401, "missing_token", "send Authorization: Bearer <read token>")
            reader = self.readers.identify(token)
            if reader is None:
                raise HttpError(401, "unknown_token", "the token is not a read token")
        except HttpError as exc:
            await self.audit.refused(
                request, exc.code, principal=None, action="authn_token_invalid"
            )
            raise
        self.metrics.reads.labels(endpoint=request.url.path).inc()
        return reader

    async def events(self, request: Request) -> Response:
        """GET /v1/events?q=&since=&until=&order=&limit=&cursor= (the store's filter language)."""
        reader = await self._reader(request)
        query = _query(request.query_params)
        page: Page = await _run(self.pipeline.store.query, query)
        await self.audit.accessed(request, reader, "event", len(page.events))
        items = [{"index": stored.index, "event": stored.event} for stored in page.events]
        return json_response({"events": items, "next_cursor": page.cursor})

    async def source_status(self, request: Request) -> Response:
        """GET /v1/sources: each source's last event, rate, sequence gaps and duplicates."""
        await self._reader(request)
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
