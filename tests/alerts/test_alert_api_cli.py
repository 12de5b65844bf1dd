"""The alert API (`/v1/alerts`, ack, resolve, comment) and `apiwatch alerts`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from alerts_support import alerts_table, failed_login, open_collector, wait_until
from click.testing import CliRunner
from starlette.applications import Starlette

from apiwatch.cli import main
from apiwatch.collector.runtime import Collector
from apiwatch.store import Query

READ = "read-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {READ}"}


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    """A collector with one brute-force alert from 203.0.113.7 and one from 203.0.113.8."""
    opened = open_collector(tmp_path, alerts_table())
    opened.config.server.read_token = READ
    for ip in ("203.0.113.7", "203.0.113.8"):
        for _ in range(6):
            opened.pipeline.ingest("app", [failed_login(ip)])
    repository = opened.detection.repository
    assert wait_until(lambda: len(repository.select(rule="brute_force_ip_fast")) == 2)
    yield opened
    opened.close()


class Api:
    """A synchronous client of an ASGI app (one event loop per request)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        """Send one request to the app."""
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.request(method, url, **options)

        return anyio.run(send)

    def get(self, url: str, **options: Any) -> httpx.Response:
        """GET `url`."""
        return self.request("GET", url, **options)

    def post(self, url: str, **options: Any) -> httpx.Response:
        """POST `url`."""
        return self.request("POST", url, **options)


@pytest.fixture
def http(collector: Collector) -> Api:
    """A client of the collector's app with the alert API."""
    from apiwatch.server.app import create_app  # noqa: PLC0415

    return Api(create_app(collector.config, collector.pipeline, detection=collector.detection))


def test_list_filters_and_shape(http: Api) -> None:
    """GET /v1/alerts returns the alert objects with the documented keys, filtered by rule,
    status and severity."""
    answer = http.get("/v1/alerts", params={"rule": "brute_force_ip_fast"}, headers=AUTH)
    assert answer.status_code == 200
    alerts = answer.json()["alerts"]
    assert {a["group"]["source.ip"] for a in alerts} == {"203.0.113.7", "203.0.113.8"}
    for key in ("id", "rule", "severity", "status", "group", "count", "first_seen",
                "last_seen", "event_ids", "timeline", "suppressed"):
        assert key in alerts[0]
    assert http.get("/v1/alerts", params={"severity": "critical"},
                    headers=AUTH).json()["alerts"] == []
    assert http.get("/v1/alerts", params={"status": "nope"}, headers=AUTH).status_code == 400


def test_reading_alerts_needs_the_read_token(http: Api) -> None:
    """Without the read token the alert API answers 401."""
    assert http.get("/v1/alerts").status_code == 401
    assert http.post("/v1/alerts/x/ack").status_code == 401


def test_ack_then_resolve_with_comments(http: Api, collector: Collector) -> None:
    """ack and resolve move the status, keep the comment, are recorded in the ledger, and a
    second resolve is a 409."""
    alert_id = http.get("/v1/alerts", headers=AUTH).json()["alerts"][0]["id"]
    acked = http.post(f"/v1/alerts/{alert_id}/ack", json={"comment": "on it"}, headers=AUTH)
    assert acked.status_code == 200
    assert acked.json()["status"] == "acknowledged"
    done = http.post(f"/v1/alerts/{alert_id}/resolve", json={"comment": "IP blocked"},
                     headers=AUTH).json()
    assert done["status"] == "resolved"
    assert [(h["action"], h["comment"]) for h in done["history"]][1:] == [
        ("ack", "on it"), ("resolve", "IP blocked")]
    assert http.post(f"/v1/alerts/{alert_id}/resolve", headers=AUTH).status_code == 409
    assert http.post("/v1/alerts/unknown/ack", headers=AUTH).status_code == 404
    listed = http.get("/v1/alerts", params={"status": "resolved"}, headers=AUTH).json()
    assert [a["id"] for a in listed["alerts"]] == [alert_id]
    assert collector.store.count(Query.parse("event.action:alert_status_changed")) == 2


def test_cli_lists_and_works_alerts(collector: Collector) -> None:
    """`apiwatch alerts --json` lists the alerts; ack and resolve change them with a comment;
    an impossible move exits 2."""
    data = str(collector.config.data_dir)
    runner = CliRunner()
    listed = runner.invoke(main, ["alerts", "--data", data, "--json", "--status", "open"])
    assert listed.exit_code == 0, listed.output
    alerts = [json.loads(line) for line in listed.output.splitlines()]
    assert len(alerts) >= 2
    alert_id = alerts[0]["id"]
    acked = runner.invoke(main, ["alerts", "ack", alert_id, "--data", data, "-m", "mine",
                                 "--json"])
    assert acked.exit_code == 0, acked.output
    assert json.loads(acked.output)["status"] == "acknowledged"
    resolved = runner.invoke(main, ["alerts", "--data", data, "resolve", alert_id, "--json"])
    assert json.loads(resolved.output)["history"][-1]["actor"].startswith("cli:")
    again = runner.invoke(main, ["alerts", "ack", alert_id, "--data", data])
    assert again.exit_code == 2
    assert "cannot ack an alert that is resolved" in again.output
