"""Alert pages: the list with filters, the detail with the events behind an alert, the
workflow (acknowledge, resolve, comment; analyst and up) and `/api/alerts`, the JSON the
pages poll so that new alerts appear without a reload.

A change is kept in the alert's history with `dashboard:<user>` as actor and written to the
ledger as an `alert_status_changed` event, as the alert API does.
"""

from __future__ import annotations

from typing import cast
from urllib.parse import quote

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from apiwatch.alerts import STATUSES, LifecycleError
from apiwatch.alerts.lifecycle import Action
from apiwatch.detect import SEVERITIES
from apiwatch.events import make_event
from apiwatch.server.dashboard import queries
from apiwatch.server.dashboard.context import Context
from apiwatch.server.dashboard.gate import Denied
from apiwatch.server.errors import json_response

ACTIONS = ("ack", "resolve", "comment")
MAX_COMMENT = 4000


class AlertPages:
    """Handlers of /alerts, /alerts/{id}, /alerts/{id}/{action} and /api/alerts."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _filters(self, request: Request) -> dict[str, str]:
        params = request.query_params
        status, severity = params.get("status", ""), params.get("severity", "")
        return {"status": status if status in STATUSES else "",
                "severity": severity if severity in SEVERITIES else "",
                "rule": params.get("rule", "")[:200]}

    async def _select(self, request: Request) -> list[dict[str, object]]:
        found = self._filters(request)
        repository = self.ctx.alerts()
        return await to_thread.run_sync(lambda: repository.select(
            status=found["status"] or None, severity=found["severity"] or None,
            rule=found["rule"] or None, limit=200))

    async def list(self, request: Request) -> Response:
        """GET /alerts?status=&severity=&rule=."""
        principal = await self.ctx.gate.require(request, "viewer")
        alerts = await self._select(request)
        await self.ctx.audit.accessed(request, principal.user.name, "alert", len(alerts))
        return self.ctx.render("alerts.html", principal, alerts=alerts,
                               filters=self._filters(request), statuses=STATUSES,
                               severities=SEVERITIES)

    async def api(self, request: Request) -> Response:
        """GET /api/alerts?status=&severity=&rule=: the newest alerts as JSON (polled)."""
        await self.ctx.gate.require(request, "viewer")
        alerts = await self._select(request)
        keep = ("id", "rule", "title", "severity", "status", "group", "count", "first_seen",
                "last_seen")
        return json_response({"alerts": [{k: a[k] for k in keep} for a in alerts]})

    async def detail(self, request: Request) -> Response:
        """GET /alerts/{id}: the alert, its history and the events behind it."""
        principal = await self.ctx.gate.require(request, "viewer")
        alert_id = request.path_params["alert_id"]
        alert = await to_thread.run_sync(self.ctx.alerts().get, alert_id)
        if alert is None:
            raise Denied(404, "no such alert")
        events = await self.ctx.run(queries.alert_events, self.ctx.pipeline.store,
                                    cast(list[str], alert["event_ids"]))
        await self.ctx.audit.accessed(request, principal.user.name, "alert", 1)
        actors = [(kind, alert["group"][field]) for kind, field in queries.ACTOR_FIELDS.items()
                  if isinstance(alert["group"].get(field), str)]
        return self.ctx.render("alert.html", principal, alert=alert, events=events,
                               actors=actors)

    async def change(self, request: Request) -> Response:
        """POST /alerts/{id}/{ack|resolve|comment} (analyst)."""
        principal = await self.ctx.gate.require(request, "analyst")
        action = request.path_params["action"]
        if action not in ACTIONS:
            raise Denied(404, "the actions are ack, resolve and comment")
        comment = principal.form.get("comment", "")[:MAX_COMMENT]
        alert_id = request.path_params["alert_id"]
        actor = f"dashboard:{principal.user.name}"
        try:
            alert = await to_thread.run_sync(self.ctx.alerts().transition, alert_id,
                                             cast(Action, action), actor, comment)
        except LifecycleError as exc:
            raise Denied(409, str(exc)) from None
        await to_thread.run_sync(self.ctx.pipeline.record, make_event("alert_status_changed", {
            "apiwatch.alert.id": alert_id, "apiwatch.alert.action": action,
            "apiwatch.alert.status": alert["status"], "user.name": actor,
            "apiwatch.alert.comment": comment,
        }, message=f"{actor}: {action} alert {alert_id}"))
        return RedirectResponse(f"/alerts/{quote(alert_id, safe='')}", 303)
