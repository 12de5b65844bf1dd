"""The dashboard's browser-facing defences: response headers and login throttling.

Pages show attacker-controlled text (user agents, user names, paths) to the people with the
most access, so besides escaping every value (Jinja2 autoescape) the browser is told to run
only the package's own script files: a Content-Security-Policy (CSP Level 3) without
'unsafe-inline' for scripts or styles, no framing (`frame-ancestors 'none'` and the older
X-Frame-Options), no referrer and no MIME sniffing.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """ASGI middleware adding HEADERS to every response, and `Cache-Control: no-store` to
    all but static files (pages hold security data that must not linger in caches)."""

    def __init__(self, app: ASGIApp, static_prefix: str = "/static/") -> None:
        self.app = app
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cache = not scope["path"].startswith(self.static_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"cache-control" or not cache]
                headers += HEADERS
                if cache:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class LoginThrottle:
    """Refuses logins for a key (a client address, a user name) that failed `limit` times
    within `window` seconds, until the oldest of those failures leaves the window.

    Keys are bounded (`max_keys`, oldest forgotten first) so an address flood cannot grow it.
    """

    def __init__(self, limit: int, window: float, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, keys: list[str], now: float | None = None) -> int:
        """0 if a login for all `keys` may be tried now, else whole seconds to wait."""
        now = time.time() if now is None else now
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.limit:
                wait = max(wait, times[-self.limit] + self.window - now)
        return 0 if wait <= 0 else max(1, int(wait + 0.999))

    def failed(self, keys: list[str], now: float | None = None) -> None:
        """Count a failed login against each of `keys`."""
        now = time.time() if now is None else now
        for key in keys:
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, keys: list[str]) -> None:
        """Forget the failures of `keys` after a successful login."""
        for key in keys:
            self._failures.pop(key, None)
