"""Fixtures for the sanitizer tests: a typical authentication-failure event."""

from __future__ import annotations

from typing import Any

import pytest

from apiwatch.events import Event, make_event


def typical_event() -> Event:
    """A 25-field `authn_login_fail` event as the capture middleware builds it."""
    fields: dict[str, Any] = {
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
    return make_event(
        "authn_login_fail",
        fields,
        message="authn_login_fail:alice@example.com",
        reason="invalid credentials",
    )


@pytest.fixture
def event() -> Event:
    """A fresh typical event."""
    return typical_event()
