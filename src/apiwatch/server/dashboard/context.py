"""What every dashboard route shares: the data it reads, the gate, and the page renderer.

Templates are Jinja2 with autoescaping on for every template and StrictUndefined: no value
reaches a page unescaped (no template uses `|safe`), and chart data travels in `data-*`
attributes (escaped, then decoded by the browser's parser) read by `static/app.js`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from anyio import to_thread
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import HTMLResponse

from apiwatch.alerts import Detection, Repository
from apiwatch.collector.pipeline import Pipeline
from apiwatch.events import format_timestamp
from apiwatch.server.account_audit import AccountAudit
from apiwatch.server.audit import Audit
from apiwatch.server.dashboard.boards import Boards
from apiwatch.server.dashboard.gate import Denied, Gate, Principal
from apiwatch.server.dashboard.queries import COLUMNS, cell
from apiwatch.server.dashboard.security import LoginThrottle
from apiwatch.store import QueryError
from apiwatch.users import Accounts

TEMPLATES = Path(__file__).parent / "templates"
T = TypeVar("T")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _iso(seconds: float) -> str:
    return format_timestamp(int(seconds * 1e9))


def environment() -> Environment:
    """The Jinja2 environment of the dashboard's templates."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson_attr"] = _json
    env.filters["cell"] = cell
    env.filters["iso"] = _iso
    env.globals["COLUMNS"] = COLUMNS
    return env


@dataclass
class Context:
    """The dashboard's dependencies."""

    pipeline: Pipeline
    detection: Detection | None
    repository: Repository | None
    accounts: Accounts
    account_audit: AccountAudit
    boards: Boards
    audit: Audit
    gate: Gate
    throttle: LoginThrottle
    sources: list[str]
    env: Environment

    def render(self, template: str, principal: Principal | None, status: int = 200,
               **values: Any) -> HTMLResponse:
        """The page `template` for `principal` (None on the login page)."""
        html = self.env.get_template(template).render(
            user=principal.user if principal else None,
            csrf=principal.csrf if principal else "", **values)
        return HTMLResponse(html, status)

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Blocking store work in a worker thread; a bad query is a 400 for people."""
        try:
            return await to_thread.run_sync(lambda: func(*args, **kwargs))
        except QueryError as exc:
            raise Denied(400, f"bad query: {exc}") from None

    def rules(self) -> Detection:
        """The detection engine's owner, or a 404 when this collector runs no detection."""
        if self.detection is None:
            raise Denied(404, "detection is not enabled on this collector")
        return self.detection

    def alerts(self) -> Repository:
        """The alerts repository, or a 404 when this collector keeps no alerts."""
        if self.repository is None:
            raise Denied(404, "alerting is not enabled on this collector")
        return self.repository
