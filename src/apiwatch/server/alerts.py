"""The alert API: `GET /v1/alerts`, `GET /v1/alerts/{id}`, and the lifecycle
`POST /v1/alerts/{id}/ack | resolve | comment` with an optional `{"comment": "..."}` body.

Reading takes an API token of any role, a lifecycle change the analyst role
(`apiwatch.server.api_auth`). Reads are recorded as `data_access`, lifecycle changes as
`alert_status_changed` events in the ledger, and each change is kept in the alert's history
with `api:<caller>` as actor.
"""

from __future__ import annotations

from typing import Any

import orjson
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from apiwatch.alerts import STATUSES, LifecycleError, Repository
from apiwatch.alerts.lifecycle import Action
from apiwatch.collector.pipeline import Pipeline
from apiwatch.detect import SEVERITIES
from apiwatch.events import make_event
from apiwatch.server.api_auth import ApiAuth
from apiwatch.server.audit import Audit
from apiwatch.server.errors import HttpError, json_response

_ACTIONS: dict[str, Action] = {"ack": "ack", "resolve": "resolve", "comment": "comment"}
_MAX_COMMENT = 4000


class AlertEndpoints:
    """Handlers of /v1/alerts."""

    def __init__(self, repository: Repository, pipeline: Pipeline, auth: ApiAuth,
                 audit: Audit) -> None:
        self.repository = repository
        self.pipeline = pipeline
        self.auth = auth
        self.audit = audit

    async def list(self, request: Request) -> Response:
        """GET /v1/alerts?status=&severity=&rule=&limit= (newest first)."""
        reader = await self.auth.viewer(request)
        params = request.query_params
        status, severity = params.get("status") or None, params.get("severity") or None
        if status is not None and status not in STATUSES:
            raise HttpError(400, "bad_query", f"status must be one of {list(STATUSES)}")
        if severity is not None and severity not in SEVERITIES:
            raise HttpError(400, "bad_query", f"severity must be one of {list(SEVERITIES)}")
        limit = params.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            raise HttpError(400, "bad_query", "limit must be a whole number from 1 to 1000")
        alerts = await to_thread.run_sync(lambda: self.repository.select(
            status=status, severity=severity, rule=params.get("rule") or None,
            limit=int(limit)))
        await self.audit.accessed(request, reader, "alert", len(alerts))
        return json_response({"alerts": alerts})

    async def get(self, request: Request) -> Response:
        """GET /v1/alerts/{id}: the alert with its deliveries."""
        reader = await self.auth.viewer(request)
        alert_id = request.path_params["alert_id"]
        alert = await to_thread.run_sync(self.repository.get, alert_id)
        if alert is None:
            raise HttpError(404, "no_alert", f"no alert {alert_id!r}")
        alert["deliveries"] = await to_thread.run_sync(self.repository.outbox_rows, alert_id)
        await self.audit.accessed(request, reader, "alert", 1)
        return json_response(alert)

    async def change(self, request: Request) -> Response:
        """POST /v1/alerts/{id}/{ack|resolve|comment} (analyst): 409 if the status does not
        allow it."""
        reader = await self.auth.require(request, "analyst")
        action = _ACTIONS.get(request.path_params["action"])
        if action is None:
            raise HttpError(404, "not_found", "the actions are ack, resolve and comment")
        comment = _comment(await request.body())
        alert_id = request.path_params["alert_id"]
        actor = f"api:{reader}"
        try:
            alert = await to_thread.run_sync(
                self.repository.transition, alert_id, action, actor, comment)
        except LifecycleError as exc:
            if self.repository.get(alert_id) is None:
                raise HttpError(404, "no_alert", str(exc)) from None
            raise HttpError(409, "bad_transition", str(exc)) from None
        event = make_event("alert_status_changed", {
            "apiwatch.alert.id": alert_id, "apiwatch.alert.action": action,
            "apiwatch.alert.status": alert["status"], "user.name": actor,
            "apiwatch.alert.comment": comment,
        }, message=f"{actor}: {action} alert {alert_id}")
        await to_thread.run_sync(self.pipeline.record, event)
        return json_response(alert)


def _comment(body: bytes) -> str:
    if not body.strip():
        return ""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise HttpError(400, "bad_request", "the body must be JSON") from None
    comment = data.get("comment", "") if isinstance(data, dict) else None
    if not isinstance(comment, str) or len(comment) > _MAX_COMMENT:
        raise HttpError(400, "bad_request",
                        f'expected {{"comment": "..."}} of at most {_MAX_COMMENT} characters')
    return comment
