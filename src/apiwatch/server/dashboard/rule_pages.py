"""The rules page: the detection rules the engine loaded (the catalogue and `[alerts] rules`
files), whether each is on, and how many alerts each raised in the last 24 hours; an admin
switches rules off and on. A switch is kept across restarts, applies to the running engine at
once (`Detection.set_rule_enabled`) and is recorded as `sys_monitor_disabled` or
`sys_monitor_enabled` naming the admin and the rule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from apiwatch.detect import Rule
from apiwatch.events import make_event
from apiwatch.server.audit import peer_fields
from apiwatch.server.dashboard.context import Context
from apiwatch.server.dashboard.gate import Denied

DAY = 86400.0


@dataclass(frozen=True)
class RuleRow:
    """One line of the rules page (tenant overrides share their rule's line)."""

    id: str
    title: str
    severity: str
    kind: str
    source: str
    enabled: bool
    fired: int


def rule_rows(rules: list[Rule], disabled: frozenset[str], fired: dict[str, int]) -> list[
        RuleRow]:
    """One row per rule id, in load order."""
    rows: dict[str, RuleRow] = {}
    for rule in rules:
        rows.setdefault(rule.id, RuleRow(
            rule.id, rule.title, rule.severity, rule.window.kind, rule.source,
            rule.id not in disabled, fired.get(rule.id, 0)))
    return list(rows.values())


class RulePages:
    """Handlers of GET /rules (viewer) and POST /rules/{id} (admin)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def list(self, request: Request) -> Response:
        """GET /rules."""
        principal = await self.ctx.gate.require(request, "viewer")
        detection = self.ctx.rules()
        fired = await to_thread.run_sync(detection.repository.raised_per_rule,
                                         time.time() - DAY)
        rows = rule_rows(detection.engine.rules, detection.engine.disabled, fired)
        return self.ctx.render("rules.html", principal, rules=rows)

    async def switch(self, request: Request) -> Response:
        """POST /rules/{id} with `enabled=1` (on) or `enabled=0` (off)."""
        principal = await self.ctx.gate.require(request, "admin")
        detection = self.ctx.rules()
        rule_id = request.path_params["rule_id"]
        enabled = principal.form.get("enabled") == "1"
        try:
            changed = await to_thread.run_sync(
                detection.set_rule_enabled, rule_id, enabled, principal.user.name)
        except KeyError:
            raise Denied(404, "no such rule") from None
        if changed:
            title = next(r.title for r in detection.engine.rules if r.id == rule_id)
            action = "sys_monitor_enabled" if enabled else "sys_monitor_disabled"
            verb = "enabled" if enabled else "disabled"
            await to_thread.run_sync(self.ctx.pipeline.record, make_event(action, {
                **peer_fields(request), "user.name": principal.user.name,
                "rule.id": rule_id, "rule.name": title,
            }, message=f"{principal.user.name} {verb} detection rule {rule_id}"))
        return RedirectResponse(f"/rules#rule-{quote(rule_id, safe='')}", 303)
