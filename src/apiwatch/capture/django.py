"""Django: a middleware for the exchanges, and the auth signals for logins.

```python
# settings.py
APIWATCH_CAPTURE = Capture("shop-api", collector=..., token=...)
MIDDLEWARE = ["apiwatch.capture.django.ApiwatchMiddleware", ...]   # first, to see everything
```

The middleware logs each exchange like the ASGI and WSGI ones (route template from
`request.resolver_match.route`, user from `request.user` unless a `user_id` hook is set) and
keeps the message of a `PermissionDenied` as the 403 event's reason; it updates the RED metrics
when `capture.metrics` is on (`apiwatch.capture.metrics`). It also connects Django's
`user_logged_in` and `user_login_failed` signals: a failed login is `authn_login_fail` with
reason `unknown_user`, `locked` (an inactive account) or `bad_password`, told apart by looking
the login name up in the user model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import (
    user_logged_in,
    user_login_failed,
)
from django.core.exceptions import (
    ImproperlyConfigured,
    PermissionDenied,
)

from apiwatch.capture.api import LoginFailure
from apiwatch.capture.config import Capture
from apiwatch.capture.http import (
    CURRENT_REQUEST,
    MAX_PEEK_BYTES,
    VALIDATION_STATUSES,
    Exchange,
    HttpRequest,
    validation_fields,
    wsgi_headers,
)

SETTING = "APIWATCH_CAPTURE"
_LOGGED_IN_UID = "apiwatch.capture.django.logged_in"
_LOGIN_FAILED_UID = "apiwatch.capture.django.login_failed"


def _headers(request: Any) -> dict[str, str]:
    return wsgi_headers(request.META)


def _route(request: Any) -> str | None:
    match = getattr(request, "resolver_match", None)
    value = getattr(match, "route", None)
    return "/" + value.lstrip("^").rstrip("$") if isinstance(value, str) else None


def _username(request: Any) -> str | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return str(user.get_username())


def _login_reason(username: str) -> LoginFailure:
    model = get_user_model()
    user = model._default_manager.filter(**{model.USERNAME_FIELD: username}).first()
    if user is None:
        return "unknown_user"
    return "bad_password" if getattr(user, "is_active", True) else "locked"


def connect_signals(capture: Capture) -> None:
    """Record Django logins and failed logins on `capture` (idempotent)."""

    def logged_in(sender: Any, request: Any = None, user: Any = None, **extra: Any) -> None:
        try:
            capture.log.login_success(str(user.get_username()))
        except Exception:  # a signal receiver that raises would break the login
            capture.failed("could not record a Django login")

    def login_failed(sender: Any, credentials: Any = None, **extra: Any) -> None:
        try:
            username = str((credentials or {}).get(get_user_model().USERNAME_FIELD, ""))
            capture.log.login_failure(username, _login_reason(username))
        except Exception:  # as above: the failed login must still be answered
            capture.failed("could not record a failed Django login")

    user_logged_in.connect(logged_in, weak=False, dispatch_uid=_LOGGED_IN_UID)
    user_login_failed.connect(login_failed, weak=False, dispatch_uid=_LOGIN_FAILED_UID)


class ApiwatchMiddleware:
    """Django middleware over `settings.APIWATCH_CAPTURE`."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        capture = getattr(settings, SETTING, None)
        if not isinstance(capture, Capture):
            raise ImproperlyConfigured(f"settings.{SETTING} must be an apiwatch Capture")
        self.capture = capture
        self.get_response = get_response
        connect_signals(capture)

    def __call__(self, request: Any) -> Any:
        """Serve the request, then record its exchange if its status is logged."""
        start_ns = time.time_ns()
        started = time.perf_counter_ns()
        current = HttpRequest(
            request.method or "GET",
            request.path,
            request.META.get("REMOTE_ADDR") or None,
            request,
            headers=_headers,
            route=_route,
        )
        token = CURRENT_REQUEST.set(current)
        try:
            response = self.get_response(request)
        finally:
            CURRENT_REQUEST.reset(token)
        # Django wraps every middleware's `get_response` (`convert_exception_to_response`), so a
        # view's exception arrives here as its 500 response: the exchange always ends below.
        try:
            self._record(request, response, current, start_ns, started)
        except Exception:  # the response is ready: capture must not replace it with an error
            self.capture.failed("could not record a Django exchange")
        finally:
            current.release()  # as in the ASGI middleware: the request need not outlive it
        return response

    def _record(
        self, request: Any, response: Any, current: HttpRequest, start_ns: int, started: int
    ) -> None:
        status = int(response.status_code)
        elapsed = time.perf_counter_ns() - started
        metrics = self.capture.metrics
        if metrics is not None:
            metrics.observe(_route(request), current.method, status, elapsed / 1e9)
        action = self.capture.wants(status)
        if action is None:
            return
        streaming = bool(getattr(response, "streaming", False))
        fields: list[str] = []
        if status in VALIDATION_STATUSES and not streaming:
            fields = validation_fields(response.content[:MAX_PEEK_BYTES])
        length = request.META.get("CONTENT_LENGTH", "")
        user = None if self.capture.user_id is not None else _username(request)
        exchange = Exchange(
            current,
            status,
            start_ns,
            elapsed,
            int(length) if str(length).isdigit() else 0,
            None if streaming else len(response.content),
            fields,
            user,
        )
        self.capture.record(exchange, action)

    def process_exception(self, request: Any, exception: Exception) -> None:
        """Keep why access was denied; Django then answers 403 as usual."""
        current = CURRENT_REQUEST.get()
        if current is not None and isinstance(exception, PermissionDenied):
            current.reason = str(exception) or "permission denied"
