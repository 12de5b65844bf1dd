"""The data set of the store tests: 36 events whose fields are simple functions of i."""

from __future__ import annotations

import os

from apiwatch.events.model import Event, make_event

#: The PostgreSQL server the store tests use (CI starts it); set APIWATCH_TEST_POSTGRES to move.
POSTGRES_DSN = os.environ.get("APIWATCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

#: 2026-11-01T00:00:00Z in nanoseconds; the data set spans three days from here.
T0_NS = 1_793_491_200_000_000_000


def _event(i: int) -> Event:
    """Event i of the data set: every field is a simple function of i, so tests can predict."""
    fields: dict[str, object] = {
        "source.ip": f"10.0.{i % 4}.{i % 7}" if i % 10 else f"2001:db8::{i % 3:x}",
        "http.response.status_code": 200 + 100 * (i % 4),
        "apiwatch.route": "/v1/items/{id}" if i % 2 else "/v1/login",
        "apiwatch.tenant": f"t{i % 3}",
        "apiwatch.source": "app",
        "tags": ["edge", f"zone-{i % 2}"],
    }
    if i % 5:
        fields["user.name"] = ["admin", "alice", "Admin", "bob"][i % 4]
    if i % 3 == 0:
        fields["apiwatch.api_key.id"] = f"key{i % 2}"
    if i % 6 == 0:
        fields["client.ip"] = f"192.168.{i % 2}.9"
    action = "authn_login_fail" if i % 3 else "authz_fail"
    # 5 hours apart: 36 events over a week; two share a timestamp to test tie order.
    ts = T0_NS + (i if i != 7 else 6) * 5 * 3600 * 10**9
    return make_event(action, fields, timestamp_ns=ts, outcome="failure" if i % 2 else "success")


DATASET: list[tuple[int, Event]] = [(i, _event(i)) for i in range(36)]
