"""Who is asking, and may they: sessions, API tokens, roles and CSRF for the dashboard.

A browser holds a session cookie (HttpOnly, SameSite=Strict, Secure over TLS, `__Host-`
prefixed then); each session has a synchronizer CSRF token (OWASP CSRF Prevention Cheat
Sheet) that every state-changing request must echo in the `csrf` form field or the
`X-CSRF-Token` header. A script holds a per-user API token (`Authorization: Bearer awu_...`),
which is no ambient credential and so needs no CSRF token. A refused request is a security
event: `authz_fail` (role or CSRF), `authn_token_invalid` (unknown token).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from apiwatch.errors import ApiwatchError
from apiwatch.server.audit import Audit
from apiwatch.server.auth import bearer_token
from apiwatch.users import Accounts, Role, User

COOKIE = "apiwatch_session"
SECURE_COOKIE = "__Host-apiwatch_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Form bodies larger than this are refused (a dashboard import is the largest).
MAX_FORM_BYTES = 1024 * 1024


class Denied(ApiwatchError):
    """A request the dashboard refuses: HTTP status and a reason for people."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class LoginRequired(ApiwatchError):
    """A page asked for without a live session: the browser goes to the login page."""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller; `csrf` is None for API-token callers."""

    user: User
    csrf: str | None
    form: dict[str, str] = field(default_factory=dict)


class Gate:
    """Authenticates dashboard requests and enforces roles and CSRF tokens."""

    def __init__(self, accounts: Accounts, audit: Audit, *, force_secure: bool) -> None:
        self.accounts = accounts
        self.audit = audit
        self.force_secure = force_secure

    def secure(self, request: Request) -> bool:
        """Whether cookies are marked Secure: over TLS, or when configured (TLS proxy)."""
        return self.force_secure or request.url.scheme == "https"

    def cookie_name(self, request: Request) -> str:
        """`__Host-` cookies must be Secure, so the prefix is used only then (RFC 6265bis)."""
        return SECURE_COOKIE if self.secure(request) else COOKIE

    def session_id(self, request: Request) -> str | None:
        """The session cookie's value, if any."""
        return request.cookies.get(self.cookie_name(request))

    def set_cookie(self, response: Response, request: Request, name: str, value: str,
                   max_age: int | None = None) -> None:
        """Set an HttpOnly, SameSite=Strict cookie for the whole site."""
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                            samesite="strict", secure=self.secure(request))

    async def require(self, request: Request, role: Role) -> Principal:
        """The caller if authenticated with at least `role` (and, for a state change from a
        browser, a valid CSRF token); else LoginRequired or Denied, recorded as events."""
        principal = await self._identify(request)
        if principal is None:
            raise LoginRequired("log in first")
        if request.method not in SAFE_METHODS:
            principal = Principal(principal.user, principal.csrf, await read_form(request))
            if principal.csrf is not None:
                presented = principal.form.get("csrf") or request.headers.get(
                    "x-csrf-token", "")
                if not hmac.compare_digest(presented.encode(), principal.csrf.encode()):
                    await self._refuse(request, principal.user, "csrf_invalid",
                                       "the form's CSRF token is missing or stale; reload")
        if not principal.user.can(role):
            await self._refuse(request, principal.user, "forbidden",
                               f"this needs the {role} role")
        return principal

    async def _identify(self, request: Request) -> Principal | None:
        token = bearer_token(request.headers.get("authorization"))
        if token is not None:
            user = await to_thread.run_sync(self.accounts.identify_token, token)
            if user is None:
                await self.audit.refused(request, "unknown_token", principal=None,
                                         action="authn_token_invalid")
                raise Denied(401, "the API token is not valid")
            return Principal(user, None)
        session_id = self.session_id(request)
        if not session_id:
            return None
        session = await to_thread.run_sync(self.accounts.session, session_id)
        return None if session is None else Principal(session.user, session.csrf)

    async def _refuse(self, request: Request, user: User, reason: str, detail: str) -> None:
        await self.audit.refused(request, reason, principal=user.name, action="authz_fail",
                                 extra={"user.roles": [user.role]})
        raise Denied(403, detail)


async def read_form(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body as a dict (last value wins), bounded."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Denied(413, "the form is too large")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise Denied(400, "the form is not UTF-8") from None
