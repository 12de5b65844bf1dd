"""The explicit API: security events only the application knows about.

A middleware sees statuses; it cannot tell a wrong password from an unknown user, or which
objects a 200 returned. The app says so here, through `capture.log`:

```python
capture.log.login_failure("alice", reason="bad_password")
capture.log.access_denied("invoice:42", "invoice.read", user="bob")
capture.log.data_access("invoice", ["42", "43"], user="bob")
```

Every method is a plain function that only queues an event, so it is safe (and cheap) from sync
and async code alike and never blocks. Called while a request is being served, the event carries
that request's client IP, request id, route and API key fingerprint. Nothing here raises into the
app: a failure is counted in `capture.internal_errors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol

from apiwatch.capture.http import CURRENT_REQUEST, Fingerprint, key_fields
from apiwatch.events import ClientIPResolver, Event, make_event

LoginFailure = Literal["unknown_user", "bad_password", "locked", "mfa_failed"]
#: Object ids kept in one data-access event; the full number is in `apiwatch.object.count`.
MAX_OBJECT_IDS = 100


class _Capture(Protocol):
    resolver: ClientIPResolver

    def emit(self, event: Event) -> bool: ...

    def fingerprint(self, key: str) -> tuple[str, str]: ...

    def failed(self, what: str) -> None: ...


class SecurityLog:
    """Methods that record one security event each; reached as `capture.log`."""

    def __init__(self, capture: _Capture) -> None:
        self._capture = capture

    def login_success(self, user: str) -> None:
        """`authn_login_success`: `user` (the login name) signed in."""
        self.event("authn_login_success", {"user.name": user}, message=f"login of {user}")

    def login_failure(self, user: str, reason: LoginFailure) -> None:
        """`authn_login_fail` for the login name `user`, with why it failed."""
        self.event(
            "authn_login_fail",
            {"user.name": user},
            message=f"failed login of {user}: {reason}",
            reason=reason,
        )

    def access_denied(self, resource: str, permission: str, user: str | None = None) -> None:
        """`authz_fail`: `user` lacked `permission` on `resource`."""
        self.event(
            "authz_fail",
            {"apiwatch.resource": resource, "apiwatch.permission": permission},
            user=user,
            message=f"{permission} denied on {resource}",
        )

    def data_access(
        self,
        object_type: str,
        ids: Iterable[str | int],
        count: int | None = None,
        user: str | None = None,
    ) -> None:
        """`data_access`: `user` read objects of `object_type` (ids, and how many in all)."""
        id_list = [str(i) for i in ids]
        self.event(
            "data_access",
            {
                "apiwatch.object.type": object_type,
                "apiwatch.object.ids": id_list[:MAX_OBJECT_IDS],
                "apiwatch.object.count": len(id_list) if count is None else count,
            },
            user=user,
            message=f"read {object_type}",
        )

    def key_created(self, key: str, user: str | None = None) -> None:
        """`authn_token_created` for the API key `key` (logged as its fingerprint only)."""
        self._key_event("authn_token_created", key, user, "API key created")

    def key_revoked(self, key: str, user: str | None = None) -> None:
        """`authn_token_revoked` for the API key `key` (logged as its fingerprint only)."""
        self._key_event("authn_token_revoked", key, user, "API key revoked")

    def _key_event(self, action: str, key: str, user: str | None, message: str) -> None:
        try:
            fields = key_fields(self._capture.fingerprint, key)
        except Exception:  # the key must not reach an event unfingerprinted: drop and count
            self._capture.failed(f"could not fingerprint a key for {action}")
            return
        self.event(action, fields, user=user, message=message)

    def role_changed(
        self, target: str, old: Iterable[str], new: Iterable[str], user: str | None = None
    ) -> None:
        """`authz_change`: the roles of `target` went from `old` to `new` (changed by `user`)."""
        new_roles = sorted(new)
        self.event(
            "authz_change",
            {"user.target.name": target, "user.changes.roles": new_roles},
            user=user,
            message=f"roles of {target} changed from {sorted(old)} to {new_roles}",
        )

    def mfa_disabled(self, target: str, user: str | None = None) -> None:
        """`user_updated` with reason `mfa_disabled`: `target` lost a second factor."""
        self.event(
            "user_updated",
            {"user.target.name": target},
            user=user,
            message=f"MFA disabled for {target}",
            reason="mfa_disabled",
        )

    def event(
        self,
        action: str,
        fields: Mapping[str, Any] | None = None,
        *,
        user: str | None = None,
        message: str | None = None,
        outcome: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Any vocabulary action with ECS `fields`; the current request's fields are added."""
        try:
            merged: dict[str, Any] = {}
            request = CURRENT_REQUEST.get()
            if request is not None:
                fingerprint: Fingerprint = self._capture.fingerprint
                merged.update(request.fields(self._capture.resolver, fingerprint))
            if user is not None:
                merged["user.id"] = user
            if fields:
                merged.update(fields)
            self._capture.emit(
                make_event(action, merged, message=message, outcome=outcome, reason=reason)
            )
        except Exception:  # an unknown action or a bad field must not break the app
            self._capture.failed(f"could not record {action!r}")
