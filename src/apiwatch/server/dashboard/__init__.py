"""The dashboard at `/`: server-rendered pages over the collector's store, alerts and sources.

`build_dashboard` returns the mount that `apiwatch.server.app` adds at `/` after the API
routes; it leaves `/v1/...`, `/healthz` and `/metrics` to the API (so a wrong method there is
still the API's JSON 405), and answers unknown paths with the same JSON errors. Accounts
live in `<data>/users.sqlite3` (`apiwatch.users`), dashboards in
`<data>/dashboards.sqlite3` (both opened and closed by `apiwatch.server.app`), switched-off
rules in `<data>/settings.sqlite3` (`apiwatch.alerts.switches`). Static files (the app
script, styles, uPlot) ship in the package: the collector needs neither Node.js nor the
internet.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from apiwatch.alerts import Detection
from apiwatch.collector.pipeline import Pipeline
from apiwatch.config import Config
from apiwatch.server.account_audit import AccountAudit
from apiwatch.server.audit import Audit
from apiwatch.server.dashboard.admin_pages import AdminPages
from apiwatch.server.dashboard.alert_pages import AlertPages
from apiwatch.server.dashboard.board_pages import BoardPages
from apiwatch.server.dashboard.boards import Boards
from apiwatch.server.dashboard.context import Context, environment
from apiwatch.server.dashboard.gate import Denied, Gate, LoginRequired
from apiwatch.server.dashboard.login import LoginRoutes
from apiwatch.server.dashboard.pages import Pages
from apiwatch.server.dashboard.rule_pages import RulePages
from apiwatch.server.dashboard.security import LoginThrottle, SecurityHeaders
from apiwatch.server.errors import handle_starlette_error, json_response
from apiwatch.users import Accounts

STATIC = Path(__file__).parent / "static"
API_PREFIXES = ("/v1/",)
API_PATHS = frozenset({"/v1", "/healthz", "/metrics"})


class DashboardMount(Mount):
    """A mount at `/` that does not claim the API's paths."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """No match for API paths, else as any mount."""
        path = scope.get("path", "")
        if path.startswith(API_PREFIXES) or path in API_PATHS:
            return Match.NONE, {}
        return super().matches(scope)


def build_dashboard(config: Config, pipeline: Pipeline, detection: Detection | None,
                    audit: Audit, *, accounts: Accounts, account_audit: AccountAudit,
                    boards: Boards) -> Mount:
    """The dashboard over `pipeline` and `detection`'s rules and alerts (None: neither)."""
    settings = config.dashboard
    ctx = Context(
        pipeline=pipeline, detection=detection,
        repository=detection.repository if detection else None, accounts=accounts,
        account_audit=account_audit, boards=boards, audit=audit,
        gate=Gate(accounts, audit, force_secure=settings.secure_cookies),
        throttle=LoginThrottle(settings.login_max_failures, settings.login_window_seconds),
        sources=sorted(config.sources), env=environment(),
    )
    login, pages = LoginRoutes(ctx), Pages(ctx)
    alerts, board_pages = AlertPages(ctx), BoardPages(ctx)
    admin, rules = AdminPages(ctx), RulePages(ctx)

    async def refused(request: Request, exc: Exception) -> Response:
        if isinstance(exc, LoginRequired):
            if request.url.path.startswith("/api/"):
                return json_response({"error": "unauthorized", "detail": str(exc)}, 401)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", 303)
        assert isinstance(exc, Denied)
        if request.url.path.startswith("/api/"):
            return json_response({"error": "refused", "detail": exc.detail}, exc.status)
        return ctx.render("error.html", None, exc.status, detail=exc.detail)

    routes = [
        Route("/", pages.overview),
        Route("/login", login.login_page, methods=["GET"]),
        Route("/login", login.login, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
        Route("/events", pages.events),
        Route("/events.jsonl", pages.export),
        Route("/events.csv", pages.export),
        Route("/actor", pages.actor),
        Route("/sources", pages.sources),
        Route("/alerts", alerts.list),
        Route("/alerts/{alert_id}", alerts.detail),
        Route("/alerts/{alert_id}/{action}", alerts.change, methods=["POST"]),
        Route("/api/alerts", alerts.api),
        Route("/dashboards", board_pages.index, methods=["GET"]),
        Route("/dashboards", board_pages.create, methods=["POST"]),
        Route("/dashboards/{board_id}.json", board_pages.export),
        Route("/dashboards/{board_id}", board_pages.show, methods=["GET"]),
        Route("/dashboards/{board_id}", board_pages.change, methods=["POST"]),
        Route("/rules", rules.list, methods=["GET"]),
        Route("/rules/{rule_id}", rules.switch, methods=["POST"]),
        Route("/admin/users", admin.users_page, methods=["GET"]),
        Route("/admin/users", admin.users_change, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={
        LoginRequired: refused, Denied: refused, HTTPException: handle_starlette_error})
    return DashboardMount("/", SecurityHeaders(app))
