"""Who may call the /v1 read and alert API, and with which role.

Two kinds of bearer token (RFC 6750) are accepted, with the dashboard's roles (viewer reads,
analyst also works alerts, admin everything):

- per-user API tokens (`awu_...`, `apiwatch users token NAME`): the caller is that user, with
  the role the user has at the time of the request (a role change or deletion applies at once);
- the service token `[server] read_token` from the config: the caller is `reader`, with the
  analyst role (it could read and acknowledge alerts before roles existed, and still can).

Source tokens (POST /v1/events) are another thing, checked by `apiwatch.server.ingest`. A
refused call is a security event: `authn_token_invalid` for a missing or unknown token,
`authz_fail` for a role too low.
"""

from __future__ import annotations

from anyio import to_thread
from starlette.requests import Request

from apiwatch.server.audit import Audit
from apiwatch.server.auth import TokenTable, bearer_token
from apiwatch.server.errors import HttpError
from apiwatch.server.metrics import Metrics
from apiwatch.users import TOKEN_PREFIX, Accounts, Role, User

#: The name and role of the config's service token.
SERVICE = User("reader", "analyst")


class ApiAuth:
    """Authenticates /v1 callers by bearer token and checks their role."""

    def __init__(self, service: TokenTable, accounts: Accounts, metrics: Metrics,
                 audit: Audit) -> None:
        self.service = service
        self.accounts = accounts
        self.metrics = metrics
        self.audit = audit

    async def require(self, request: Request, role: Role) -> str:
        """The caller's name if their token is valid and their role at least `role`; else an
        HttpError (401 or 403), recorded as an event."""
        try:
            user = await self._identify(request)
        except HttpError as exc:
            await self.audit.refused(request, exc.code, principal=None,
                                     action="authn_token_invalid")
            raise
        if not user.can(role):
            await self.audit.refused(request, "forbidden", principal=user.name,
                                     action="authz_fail", extra={"user.roles": [user.role]})
            raise HttpError(403, "forbidden", f"this needs the {role} role")
        self.metrics.reads.labels(endpoint=request.url.path).inc()
        return user.name

    async def viewer(self, request: Request) -> str:
        """`require(request, "viewer")`: any valid token."""
        return await self.require(request, "viewer")

    async def _identify(self, request: Request) -> User:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise HttpError(401, "missing_token", "send Authorization: Bearer <API token>")
        if token.startswith(TOKEN_PREFIX):
            user = await to_thread.run_sync(self.accounts.identify_token, token)
            if user is not None:
                return user
        elif self.service and self.service.identify(token) is not None:
            return SERVICE
        raise HttpError(401, "unknown_token", "the token is not a valid API token")
