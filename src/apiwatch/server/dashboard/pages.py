"""The read-only pages: overview, event search (with JSON lines and CSV export), actor
timeline and sources. Every search or export is recorded as a `data_access` event naming
the dashboard user, like reads through the API.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from apiwatch.server.dashboard import queries
from apiwatch.server.dashboard.context import Context
from apiwatch.server.dashboard.gate import Denied
from apiwatch.store import Query

PAGE_SIZES = (50, 100, 500)
EXPORT_LIMIT = 10_000
#: Leading characters a spreadsheet runs as a formula (OWASP CSV Injection).
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    text = queries.cell(value)
    return "'" + text if text.startswith(_FORMULA) else text


class Pages:
    """Handlers of /, /events, /events.jsonl, /events.csv, /actor and /sources."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def overview(self, request: Request) -> Response:
        """GET /?range=1h."""
        principal = await self.ctx.gate.require(request, "viewer")
        span = request.query_params.get("range", "1h")
        start = await self.ctx.run(queries.since, span)
        data = await self.ctx.run(queries.overview, self.ctx.pipeline, self.ctx.repository,
                                  self.ctx.sources, start)
        return self.ctx.render("overview.html", principal, range=span, **data)

    def _query(self, request: Request, limit: int) -> tuple[Query, dict[str, str]]:
        params = request.query_params
        form = {k: params.get(k, "") for k in ("q", "since", "until", "order")}
        form["since"] = form["since"] or "1h"
        order = "oldest" if form["order"] == "oldest" else "newest"
        until = queries.since(form["until"]) if form["until"] else None
        query = Query.parse(form["q"], since=queries.since(form["since"]), until=until,
                            order=order, limit=limit, cursor=params.get("cursor") or None)
        return query, form

    async def events(self, request: Request) -> Response:
        """GET /events?q=&since=&until=&order=&limit=&cursor=."""
        principal = await self.ctx.gate.require(request, "viewer")
        limit_text = request.query_params.get("limit", "100")
        limit = int(limit_text) if limit_text in {str(n) for n in PAGE_SIZES} else 100
        query, form = await self.ctx.run(self._query, request, limit)
        page = await self.ctx.run(self.ctx.pipeline.store.query, query)
        await self.ctx.audit.accessed(request, principal.user.name, "event", len(page.events))
        return self.ctx.render("events.html", principal, form=form, limit=limit,
                               sizes=PAGE_SIZES, events=[s.event for s in page.events],
                               cursor=page.cursor)

    async def export(self, request: Request) -> Response:
        """GET /events.jsonl or /events.csv: up to EXPORT_LIMIT events of the search."""
        principal = await self.ctx.gate.require(request, "viewer")
        query, _ = await self.ctx.run(self._query, request, EXPORT_LIMIT)
        page = await self.ctx.run(self.ctx.pipeline.store.query, query)
        await self.ctx.audit.accessed(request, principal.user.name, "event", len(page.events))
        events = [s.event for s in page.events]
        if request.url.path.endswith(".csv"):
            body, media, name = _csv(events), "text/csv; charset=utf-8", "events.csv"
        else:
            body = (orjson.dumps(e) + b"\n" for e in events)
            media, name = "application/x-ndjson", "events.jsonl"
        return StreamingResponse(body, media_type=media, headers={
            "content-disposition": f'attachment; filename="{name}"'})

    async def actor(self, request: Request) -> Response:
        """GET /actor?kind=ip|user|key&value=&since=: timeline, objects read, alerts raised."""
        principal = await self.ctx.gate.require(request, "viewer")
        params = request.query_params
        kind, value = params.get("kind", ""), params.get("value", "")
        if kind not in queries.ACTOR_FIELDS or not value:
            raise Denied(400, "an actor is kind=ip|user|key and a value")
        span = params.get("since", "24h")
        start = await self.ctx.run(queries.since, span)
        data = await self.ctx.run(queries.actor, self.ctx.pipeline, self.ctx.repository,
                                  kind, value, start=start, cursor=params.get("cursor") or None)
        await self.ctx.audit.accessed(request, principal.user.name, "event",
                                      len(data["events"]))
        return self.ctx.render("actor.html", principal, kind=kind, value=value, since=span,
                               **data)

    async def sources(self, request: Request) -> Response:
        """GET /sources: last seen, rate, gaps, silence."""
        principal = await self.ctx.gate.require(request, "viewer")
        rows = await self.ctx.run(queries.source_rows, self.ctx.pipeline, self.ctx.sources)
        ledger = await self.ctx.run(queries.ledger_status, self.ctx.pipeline)
        return self.ctx.render("sources.html", principal, sources=rows, ledger=ledger)


def _csv(events: list[dict[str, object]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([field for _, field in queries.COLUMNS])
    for event in events:
        writer.writerow([csv_cell(event.get(field)) for _, field in queries.COLUMNS])
    yield buffer.getvalue().encode()
