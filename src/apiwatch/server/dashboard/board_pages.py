"""Custom dashboard pages: list, create, import, show (panels computed from the store),
add / move / remove panels, export as JSON, delete. Viewers see; analysts build.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from apiwatch.server.dashboard import queries
from apiwatch.server.dashboard.boards import (
    KINDS,
    RANGES,
    Board,
    BoardError,
    Panel,
    parse_export,
)
from apiwatch.server.dashboard.context import Context
from apiwatch.server.dashboard.gate import Denied, Principal
from apiwatch.server.errors import json_response
from apiwatch.store import Query, Store
from apiwatch.store.base import HOT


def panel_data(store: Store, panel: Panel) -> dict[str, Any]:
    """What one panel shows: chart series, top values, rows or a number."""
    now = datetime.now(UTC)
    start = panel.start(now)
    query = Query.parse(panel.query, since=start, limit=20)
    if panel.kind == "timeseries":
        hours = (now - start).total_seconds() / 3600
        bucket = timedelta(minutes=1) if hours <= 6 else timedelta(hours=1)
        return {"series": queries.series(store, query, start, bucket)}
    if panel.kind == "top":
        return {"top": store.top(panel.field, query, 10)}
    if panel.kind == "table":
        return {"rows": [s.event for s in store.query(query).events]}
    return {"number": store.count(query)}


def _redirect(board: Board) -> Response:
    return RedirectResponse(f"/dashboards/{quote(board.id, safe='')}", 303)


class BoardPages:
    """Handlers under /dashboards."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def _board(self, request: Request, principal: Principal, *, edit: bool) -> Board:
        board = await to_thread.run_sync(self.ctx.boards.get, request.path_params["board_id"],
                                         principal.user.name)
        if board is None:
            raise Denied(404, "no such dashboard")
        if edit and board.owner != principal.user.name and not principal.user.can("admin"):
            await self.ctx.audit.refused(request, "not_owner", principal=principal.user.name,
                                         action="authz_fail")
            raise Denied(403, "only its owner or an admin changes a dashboard")
        return board

    async def _save(self, board: Board) -> Response:
        try:
            await to_thread.run_sync(self.ctx.boards.save, board)
        except BoardError as exc:
            raise Denied(400, str(exc)) from None
        return _redirect(board)

    async def index(self, request: Request) -> Response:
        """GET /dashboards."""
        principal = await self.ctx.gate.require(request, "viewer")
        boards = await to_thread.run_sync(self.ctx.boards.visible, principal.user.name)
        return self.ctx.render("dashboards.html", principal, boards=boards)

    async def create(self, request: Request) -> Response:
        """POST /dashboards: a new empty dashboard, or one imported from JSON."""
        principal = await self.ctx.gate.require(request, "analyst")
        form = principal.form
        try:
            if form.get("import", "").strip():
                board = parse_export(orjson.loads(form["import"]), principal.user.name)
            else:
                board = parse_export({"name": form.get("name", ""),
                                      "shared": form.get("shared") == "on"},
                                     principal.user.name)
        except orjson.JSONDecodeError:
            raise Denied(400, "the import is not JSON") from None
        except BoardError as exc:
            raise Denied(400, str(exc)) from None
        return await self._save(board)

    async def show(self, request: Request) -> Response:
        """GET /dashboards/{id}: every panel with its data."""
        principal = await self.ctx.gate.require(request, "viewer")
        board = await self._board(request, principal, edit=False)
        store = self.ctx.pipeline.store
        panels = [(p, await self.ctx.run(panel_data, store, p)) for p in board.panels]
        return self.ctx.render("dashboard.html", principal, board=board, panels=panels,
                               kinds=KINDS, ranges=RANGES, fields=sorted(HOT),
                               editable=principal.user.can("analyst"))

    async def export(self, request: Request) -> Response:
        """GET /dashboards/{id}.json: the portable JSON, as a download."""
        principal = await self.ctx.gate.require(request, "viewer")
        board = await self._board(request, principal, edit=False)
        return json_response(board.export(), headers={
            "content-disposition": 'attachment; filename="dashboard.json"'})

    async def change(self, request: Request) -> Response:
        """POST /dashboards/{id}: op=add|up|down|remove|delete (analyst, owner or admin)."""
        principal = await self.ctx.gate.require(request, "analyst")
        board = await self._board(request, principal, edit=True)
        form = principal.form
        op = form.get("op", "")
        if op == "delete":
            await to_thread.run_sync(self.ctx.boards.delete, board.id)
            return RedirectResponse("/dashboards", 303)
        if op == "add":
            try:
                board.panels.append(Panel.from_json(
                    {k: form.get(k, "") for k in ("title", "kind", "query", "field", "range")}))
            except BoardError as exc:
                raise Denied(400, str(exc)) from None
            return await self._save(board)
        index = int(form["index"]) if form.get("index", "").isdigit() else -1
        if not 0 <= index < len(board.panels):
            raise Denied(400, "no such panel")
        if op == "remove":
            board.panels.pop(index)
        elif op in ("up", "down"):
            other = index - 1 if op == "up" else index + 1
            if 0 <= other < len(board.panels):
                board.panels[index], board.panels[other] = board.panels[other], board.panels[index]
        else:
            raise Denied(400, "op must be add, up, down, remove or delete")
        return await self._save(board)
