"""The admin's accounts page: users, their roles and their API tokens.

GET /admin/users lists users and tokens (by id and age: a token's secret is shown once, in the
answer that creates it, and never again). POST /admin/users takes `op`: `add` (name, role,
password), `role` (name, role), `delete` (name), `token` (name) or `revoke` (token id). Every
change is written with its audit row by `apiwatch.users` and recorded in the ledger before the
page answers; a change of role or a deletion applies to the user's open sessions and tokens on
their next request.
"""

from __future__ import annotations

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from apiwatch.server.dashboard.context import Context
from apiwatch.server.dashboard.gate import Principal
from apiwatch.users import ROLES, UserError


class AdminPages:
    """Handlers of /admin/users (admin only)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def users_page(self, request: Request) -> Response:
        """GET /admin/users."""
        principal = await self.ctx.gate.require(request, "admin")
        return await self._page(principal)

    async def users_change(self, request: Request) -> Response:
        """POST /admin/users: one change (see the module docstring); the page again."""
        principal = await self.ctx.gate.require(request, "admin")
        form, accounts = principal.form, self.ctx.accounts
        op, name = form.get("op", ""), form.get("name", "")
        actor = f"dashboard:{principal.user.name}"
        token, status = "", 200
        try:
            if op == "add":
                await to_thread.run_sync(lambda: accounts.add(
                    name, form.get("role", ""), form.get("password", ""), actor=actor))
                message = f"user {name} created"
            elif op == "role":
                role = form.get("role", "")
                await to_thread.run_sync(lambda: accounts.set_role(name, role, actor=actor))
                message = f"{name} is now {role}"
            elif op == "delete":
                await to_thread.run_sync(lambda: accounts.delete(name, actor=actor))
                message = f"user {name} deleted; their sessions and tokens ended"
            elif op == "token":
                token = await to_thread.run_sync(lambda: accounts.issue_token(
                    name, actor=actor))
                message = f"token issued for {name}"
            elif op == "revoke":
                token_id = form.get("token", "")
                owner = await to_thread.run_sync(lambda: accounts.revoke_token(
                    token_id, actor=actor))
                message = f"token {token_id} of {owner} revoked"
            else:
                raise UserError("op must be add, role, delete, token or revoke")
        except UserError as exc:
            message, status = str(exc), 400
        await self.ctx.account_audit.flush()
        return await self._page(principal, status, message=message, token=token)

    async def _page(self, principal: Principal, status: int = 200, *, message: str = "",
                    token: str = "") -> Response:
        accounts = self.ctx.accounts
        users = await to_thread.run_sync(accounts.users)
        tokens = await to_thread.run_sync(accounts.tokens)
        return self.ctx.render("users.html", principal, status, users=users, roles=ROLES,
                               tokens=tokens, message=message, token=token)
