"""Logging in and out.

The login form carries a pre-session CSRF token (double-submit: an HttpOnly cookie and a
hidden field must match), so another site cannot log a browser into an attacker's account.
Every failed login is an `authn_login_fail` event with the client address and the user name
tried, written through the pipeline so the brute-force rules of the catalogue see it: the
collector watches its own door. Past `login_max_failures` per address or per user name in the
window, logins are refused (429) without checking the password; those attempts are still
`authn_login_fail` events (reason `throttled`, within the refusal budget).
"""

from __future__ import annotations

import hmac
import secrets

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from apiwatch.events import make_event
from apiwatch.server.audit import peer_fields
from apiwatch.server.dashboard.context import Context
from apiwatch.server.dashboard.gate import read_form

LOGIN_COOKIE = "apiwatch_login"


def safe_next(target: str) -> str:
    """A post-login destination on this site only (no `//host` or scheme: no open redirect)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


class LoginRoutes:
    """GET/POST /login and POST /logout."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _form(self, request: Request, status: int = 200, error: str = "",
              name: str = "") -> Response:
        token = secrets.token_urlsafe(32)
        response = self.ctx.render("login.html", None, status, login_csrf=token, error=error,
                                   name=name, next=safe_next(request.query_params.get(
                                       "next", "/")))
        self.ctx.gate.set_cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
        return response

    async def login_page(self, request: Request) -> Response:
        """GET /login."""
        return self._form(request)

    async def login(self, request: Request) -> Response:
        """POST /login: a session cookie and a redirect, or the form again with a reason."""
        form = await read_form(request)
        name, password = form.get("username", "")[:200], form.get("password", "")
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not hmac.compare_digest(form.get("csrf", "").encode(),
                                                   expected.encode()):
            return self._form(request, 403, "The form expired; please try again.", name)
        client = request.client.host if request.client else ""
        keys = [f"ip:{client}", f"user:{name}"]
        throttle = self.ctx.throttle
        wait = throttle.retry_after(keys)
        if wait:
            await self.ctx.audit.refused(request, "throttled", principal=name or None,
                                         action="authn_login_fail")
            response = self._form(request, 429, f"Too many failed logins; retry in {wait} s.",
                                  name)
            response.headers["retry-after"] = str(wait)
            return response
        user = await to_thread.run_sync(self.ctx.accounts.authenticate, name, password)
        fields = {**peer_fields(request), "user.name": name}
        if user is None:
            throttle.failed(keys)
            await self._record(make_event("authn_login_fail", fields, reason="bad_credentials",
                                          message=f"dashboard login failed for {name!r}"))
            return self._form(request, 401, "Wrong user name or password.", name)
        throttle.succeeded([f"user:{name}"])
        session_id, _ = await to_thread.run_sync(self.ctx.accounts.start_session, user)
        await self._record(make_event("authn_login_success", fields,
                                      message=f"{name} logged in to the dashboard"))
        response = RedirectResponse(safe_next(form.get("next", "/")), 303)
        gate = self.ctx.gate
        gate.set_cookie(response, request, gate.cookie_name(request), session_id)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        """POST /logout: the session ends on the server, so its cookie is worthless."""
        principal = await self.ctx.gate.require(request, "viewer")
        session_id = self.ctx.gate.session_id(request)
        if session_id:
            await to_thread.run_sync(self.ctx.accounts.end_session, session_id)
        await self._record(make_event("session_logout", {
            **peer_fields(request), "user.name": principal.user.name},
            message=f"{principal.user.name} logged out of the dashboard"))
        response = RedirectResponse("/login", 303)
        response.delete_cookie(self.ctx.gate.cookie_name(request), path="/")
        return response

    async def _record(self, event: dict[str, object]) -> None:
        await to_thread.run_sync(self.ctx.pipeline.record, event)
