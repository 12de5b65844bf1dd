"""The collector's own security events: refused requests (bounded) and reads of the logs.

A refused request is recorded as `ingest_refused` (or `authn_token_invalid` on the read side)
with the reason code, the peer address, its user agent and the claimed identity; past the
`RefusalBudget` a refusal is only counted, and one summary event per minute says how many were
left out. Every read of stored events is recorded as `data_access` naming the reader and the
query, and a read whose record cannot be written is not served (that side fails closed).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import time
from collections.abc import Mapping
from typing import Any

from anyio import to_thread
from starlette.requests import Request

from apiwatch.collector.pipeline import Pipeline
from apiwatch.errors import ApiwatchError
from apiwatch.events import Event, make_event
from apiwatch.server.auth import RefusalBudget
from apiwatch.server.metrics import Metrics

log = logging.getLogger(__name__)


def peer_fields(request: Request) -> dict[str, Any]:
    """ECS fields describing who sent `request`: peer address, user agent, path, method."""
    fields: dict[str, Any] = {
        "url.path": request.url.path,
        "http.request.method": request.method,
    }
    host = request.client.host if request.client else ""
    # Not an IP peer (a Unix socket, a test transport): there is no address to record.
    with contextlib.suppress(ValueError):
        fields["source.ip"] = str(ipaddress.ip_address(host))
    agent = request.headers.get("user-agent")
    if agent:
        fields["user_agent.original"] = agent
    return fields


class Audit:
    """Writes the collector's own events through the pipeline (in a worker thread)."""

    def __init__(self, pipeline: Pipeline, metrics: Metrics, budget: RefusalBudget) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.budget = budget

    async def refused(
        self,
        request: Request,
        reason: str,
        *,
        principal: str | None,
        action: str = "ingest_refused",
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Count a refusal and, within the budget, record it as an event."""
        self.metrics.refused.labels(source=principal or "", reason=reason).inc()
        fields = peer_fields(request)
        if not self.budget.admit(fields.get("source.ip", ""), time.time()):
            self.metrics.refusals_suppressed.inc()
            return
        if principal:
            fields["user.name"] = principal
        fields.update(extra or {})
        who = f"source {principal}" if principal else "an unidentified sender"
        event = make_event(
            action, fields, reason=reason, message=f"refused a request from {who}: {reason}"
        )
        try:
            await self._record(event)
        except (ApiwatchError, OSError):
            # The refusal stands either way; a failing disk is reported by health and metrics.
            log.exception("could not record a refusal event")

    async def accessed(
        self, request: Request, principal: str, object_type: str, count: int
    ) -> None:
        """Record that `principal` read `count` objects; raises if it cannot be recorded."""
        fields = peer_fields(request)
        fields.update({
            "user.name": principal,
            "apiwatch.object.type": object_type,
            "apiwatch.object.count": count,
        })
        if request.url.query:
            fields["url.query"] = request.url.query
        message = f"{principal} read {count} {object_type} record(s)"
        await self._record(make_event("data_access", fields, message=message))

    async def flush(self, now: float) -> None:
        """Record the summary of refusals suppressed in the minutes that ended."""
        summary = self.budget.take_summary(now)
        if summary is None:
            return
        event = make_event(
            "ingest_refused",
            {"apiwatch.dropped": summary.events},
            reason="suppressed",
            message=(
                f"{summary.events} refused request(s) from {summary.peers} peer(s) were not "
                "recorded one by one (refusal budget exceeded)"
            ),
        )
        await self._record(event)

    async def _record(self, event: Event) -> None:
        await to_thread.run_sync(self.pipeline.record, event)
