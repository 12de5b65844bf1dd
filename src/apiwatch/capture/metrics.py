"""RED metrics of the instrumented application (Rate, Errors, Duration) with prometheus-client.

```python
capture = Capture("shop-api", sinks=[...], metrics=True)
app.add_middleware(ApiwatchMiddleware, capture=capture)
app.mount("/metrics", capture.metrics.asgi_app())     # or capture.metrics.wsgi_app()
```

Metrics live in a registry owned by the application, never prometheus-client's global one:
`apiwatch_http_requests_total{route,method,status_class}` (errors are the `4xx` and `5xx`
classes), `apiwatch_http_request_duration_seconds{route,method}` and
`apiwatch_security_events_total{action}` (every event capture emits, by `event.action`).
Labels are bounded: the route is the framework's template (`<unmatched>` without one), the
method one of the RFC 9110 methods or `OTHER`.

Under gunicorn with several workers, set `PROMETHEUS_MULTIPROC_DIR` to an empty directory
before the workers start (and clear it on restart): prometheus-client then writes each
worker's values there, and the endpoints aggregate all workers (`MultiProcessCollector`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, make_asgi_app, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector

UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE",
                      "PATCH"})


class CaptureMetrics:
    """The RED counters and histogram the middleware updates, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "apiwatch_http_requests", "HTTP requests served, by route template and status class.",
            ["route", "method", "status_class"], registry=r,
        )
        self.duration = Histogram(
            "apiwatch_http_request_duration_seconds", "Time to serve a request, in seconds.",
            ["route", "method"], registry=r,
        )
        self.security_events = Counter(
            "apiwatch_security_events", "Events emitted by capture, by event.action.",
            ["action"], registry=r,
        )

    def observe(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        route = route or UNMATCHED
        method = method.upper() if method.upper() in _METHODS else "OTHER"
        self.requests.labels(route, method, f"{status // 100}xx").inc()
        self.duration.labels(route, method).observe(seconds)

    def event(self, action: str) -> None:
        """Count one emitted event of `action`."""
        self.security_events.labels(action).inc()

    def _exposed(self) -> CollectorRegistry:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return self.registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # reads every worker's files from the directory
        return registry

    def asgi_app(self) -> Callable[..., Any]:
        """An ASGI app answering with the text exposition format (mount it at /metrics)."""
        return make_asgi_app(self._exposed())

    def wsgi_app(self) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
        """A WSGI app answering with the text exposition format."""
        return make_wsgi_app(self._exposed())
