"""Custom dashboards over the API: `GET /v1/dashboards` (those the caller may see) and
`GET /v1/dashboards/{id}` (one, in the portable JSON of `apiwatch.server.dashboard.boards`,
the same that the dashboard exports and imports). Any role reads; a board is visible to its
owner and, when shared, to everyone (the service token sees shared boards only).
"""

from __future__ import annotations

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from apiwatch.server.api_auth import ApiAuth
from apiwatch.server.dashboard.boards import Boards
from apiwatch.server.errors import HttpError, json_response


class BoardEndpoints:
    """Handlers of /v1/dashboards."""

    def __init__(self, boards: Boards, auth: ApiAuth) -> None:
        self.boards = boards
        self.auth = auth

    async def list(self, request: Request) -> Response:
        """GET /v1/dashboards: id, name, owner, shared and panel count of each, by name."""
        caller = await self.auth.viewer(request)
        boards = await to_thread.run_sync(self.boards.visible, caller)
        return json_response({"dashboards": [
            {"id": b.id, "name": b.name, "owner": b.owner, "shared": b.shared,
             "panels": len(b.panels)} for b in boards]})

    async def get(self, request: Request) -> Response:
        """GET /v1/dashboards/{id}: the board's portable JSON, or 404 if not visible."""
        caller = await self.auth.viewer(request)
        board = await to_thread.run_sync(self.boards.get, request.path_params["board_id"],
                                         caller)
        if board is None:
            raise HttpError(404, "no_dashboard", "no such dashboard, or not shared with you")
        return json_response({"id": board.id, "owner": board.owner, **board.export()})
