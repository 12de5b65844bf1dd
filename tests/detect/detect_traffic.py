"""Realistic generated API traffic for the catalogue tests, from a seeded random generator."""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from apiwatch.detect import Alert, Engine, Rule, load_catalogue
from apiwatch.events import Event, make_event

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
ROUTES = ("/api/v1/orders/{id}", "/api/v1/invoices/{id}", "/api/v1/profile")


def event(action: str, ts: float, fields: dict[str, Any], *, outcome: str | None = None,
          reason: str | None = None) -> Event:
    """An event of `action` at `ts` seconds (event time) with ECS `fields`."""
    return make_event(action, fields, outcome=outcome, reason=reason,
                      timestamp_ns=round(ts * 1e9))


class Users:
    """A population of users, each with an API key, a home address and a usual route."""

    def __init__(self, rng: random.Random, count: int = 200) -> None:
        self.rng = rng
        self.people = [
            {"user": f"user{i}", "key": f"key-{i:04d}",
             "ip": f"198.51.{rng.randrange(0, 100)}.{rng.randrange(1, 255)}"}
            for i in range(count)
        ]

    def normal(self, seconds: float, rate: float, start: float = START,
               failure_rate: float = 0.03, login_share: float = 0.05) -> Iterator[Event]:
        """Normal traffic for `seconds` at `rate` events/s: requests, reads, logins with a
        small failure rate, the odd 404, 403 and 500."""
        rng = self.rng
        ts = start
        while ts < start + seconds:
            ts += rng.expovariate(rate)
            p = rng.choice(self.people)
            roll = rng.random()
            common = {"source.ip": p["ip"], "user.name": p["user"],
                      "apiwatch.api_key.id": p["key"], "apiwatch.source": "api-1",
                      "service.name": "shop"}
            if roll < login_share:
                ok = rng.random() >= failure_rate
                yield event("authn_login_success" if ok else "authn_login_fail", ts, common)
            elif roll < login_share + 0.1:
                yield event("data_access", ts, {**common, "apiwatch.object.type": "order",
                                                "apiwatch.object.count": rng.randrange(1, 50)})
            else:
                oid = rng.randrange(1, 10_000)
                status = rng.choices((200, 404, 403, 500), (0.97, 0.015, 0.01, 0.005))[0]
                route = rng.choice(ROUTES)
                path = route.replace("{id}", str(oid))
                yield event("authz_fail" if status == 403 else "http_request", ts, {
                    **common, "http.request.method": "GET", "url.path": path,
                    "url.original": path, "apiwatch.route": route,
                    "http.response.status_code": status,
                }, outcome="failure" if status >= 400 else "success")


@lru_cache(maxsize=1)
def catalogue() -> tuple[Rule, ...]:
    """The shipped catalogue, loaded once per test session."""
    return tuple(load_catalogue())


def run(events: list[Event], *, advance_to: float | None = None) -> list[Alert]:
    """The alerts of the whole catalogue on `events` (sorted by time), then `advance`."""
    engine = Engine(catalogue())
    events.sort(key=lambda e: str(e["@timestamp"]))
    alerts = [a for e in events for a in engine.process(e)]
    if advance_to is not None:
        alerts += engine.advance(advance_to)
    return alerts


def fired(alerts: list[Alert], rule: str) -> list[Alert]:
    """The alerts of one rule."""
    return [a for a in alerts if a.rule == rule]
