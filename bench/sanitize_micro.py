"""Micro-benchmark of the sanitizer against structlog + orjson on one typical event.

Run: `python bench/sanitize_micro.py`. Prints µs per event and the ratio to the baseline
(structlog with an ISO timestamp and orjson rendering the same fields), measured in this run.
"fresh" events each have a new id and timestamp, as real events do; repeated values (vocabulary,
user agent, route) hit the sanitizer's memo of clean values, as they do in a real stream.
"""

from __future__ import annotations

import copy
import io
import timeit
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from apiwatch.events import Event, make_event
from apiwatch.sanitize import Sanitizer

FIELDS: dict[str, Any] = {
    "source.ip": "203.0.113.45",
    "source.port": 51234,
    "user.name": "alice@example.com",
    "url.path": "/api/v1/auth/login",
    "url.query": "next=%2Fdashboard&lang=en",
    "url.original": "https://api.example.com/api/v1/auth/login?next=%2Fdashboard&lang=en",
    "http.request.method": "POST",
    "http.response.status_code": 401,
    "http.request.id": "req-7f3a9c2e",
    "user_agent.original": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_0) AppleWebKit/537.36"
        " (KHTML, like Gecko) Chrome/54.0.2840.59 Safari/537.36"
    ),
    "service.name": "payments-api",
    "host.name": "api-1",
    "trace.id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "apiwatch.route": "/api/v1/auth/login",
}


def build() -> Event:
    return make_event(
        "authn_login_fail",
        FIELDS,
        message="authn_login_fail:alice@example.com",
        reason="invalid credentials",
    )


def best(func: Callable[[], object], number: int) -> float:
    """Best of 5 runs, in µs per call."""
    return min(timeit.repeat(func, number=number, repeat=5)) / number * 1e6


def main() -> None:
    sink = io.BytesIO()
    structlog.configure(
        processors=[
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        logger_factory=structlog.BytesLoggerFactory(sink),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger()
    kwargs = {**FIELDS, "event.action": "authn_login_fail", "event.outcome": "failure"}

    def baseline() -> None:
        log.info("authn_login_fail:alice@example.com", **kwargs)
        sink.seek(0)
        sink.truncate()

    sanitizer = Sanitizer()
    encode = orjson.dumps
    clean = build()
    assert len(clean) >= 25
    assert sanitizer(copy.deepcopy(clean)) == clean
    dirty = build()
    dirty["message"] = "login failed\r\nfor alice password=hunter2"

    fresh = iter([build() for _ in range(6 * 20_000)])  # new id and timestamp each, as in life

    rows = [
        ("structlog + orjson (baseline)", best(baseline, 20_000)),
        ("make_event", best(build, 20_000)),
        ("Sanitizer(same clean event again)", best(lambda: sanitizer(clean), 20_000)),
        ("Sanitizer(fresh clean event)", best(lambda: sanitizer(next(fresh)), 20_000)),
        ("make_event + Sanitizer + orjson.dumps", best(lambda: encode(sanitizer(build())), 20_000)),
        ("make_event + orjson.dumps (no Sanitizer)", best(lambda: encode(build()), 20_000)),
        ("Sanitizer full path (clean event)", best(lambda: sanitizer._full(dict(clean)), 2_000)),
        ("Sanitizer(dirty event, copied)", best(lambda: sanitizer(dict(dirty)), 2_000)),
    ]
    base = rows[0][1]
    print(f"{'case':42s} {'µs/event':>9s} {'x baseline':>10s}")
    for name, micros in rows:
        print(f"{name:42s} {micros:9.2f} {micros / base:10.2f}")


if __name__ == "__main__":
    main()
