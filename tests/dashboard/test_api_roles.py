"""The /v1 read and alert API with per-user API tokens: the dashboard's roles apply, the
config's read token keeps working as a service token with the analyst role, and every refusal
is a security event."""

from __future__ import annotations

import httpx
import pytest
from dashboard_support import SERVICE_TOKEN, actions, raise_alert

from apiwatch.collector.runtime import Collector
from apiwatch.events import make_event
from apiwatch.server.dashboard.boards import FILE_NAME as BOARDS_FILE
from apiwatch.server.dashboard.boards import Boards, parse_export
from apiwatch.users import FILE_NAME, Accounts


@pytest.fixture
def tokens(collector: Collector) -> dict[str, dict[str, str]]:
    """An Authorization header per role, from tokens issued to the fixture's users."""
    accounts = Accounts(collector.config.data_dir / FILE_NAME)
    try:
        return {role: {"authorization": f"Bearer {accounts.issue_token(role)}"}
                for role in ("viewer", "analyst", "admin")}
    finally:
        accounts.close()


@pytest.mark.parametrize("path", ["/v1/events", "/v1/sources", "/v1/alerts"])
def test_every_role_reads(http: httpx.Client, tokens: dict[str, dict[str, str]],
                          path: str) -> None:
    """A viewer's, analyst's or admin's token reads events, sources and alerts."""
    for headers in tokens.values():
        assert http.get(path, headers=headers).status_code == 200


def test_reads_name_the_user(http: httpx.Client, collector: Collector,
                             tokens: dict[str, dict[str, str]]) -> None:
    """A read with a user's token is a data_access event naming that user."""
    http.get("/v1/events", headers=tokens["viewer"])
    assert [e["user.name"] for e in actions(collector, "data_access")] == ["viewer"]


def test_viewer_cannot_acknowledge(http: httpx.Client, collector: Collector,
                                   tokens: dict[str, dict[str, str]]) -> None:
    """A viewer's ack is 403 and an authz_fail event; the alert stays open."""
    alert_id = raise_alert(collector)
    response = http.post(f"/v1/alerts/{alert_id}/ack", headers=tokens["viewer"])
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert collector.detection.repository.get(alert_id)["status"] == "open"  # type: ignore[index]
    [refusal] = actions(collector, "authz_fail")
    assert refusal["user.name"] == "viewer"
    assert refusal["user.roles"] == ["viewer"]


def test_analyst_acknowledges_as_themselves(http: httpx.Client, collector: Collector,
                                            tokens: dict[str, dict[str, str]]) -> None:
    """An analyst's ack succeeds and the alert's history names them."""
    alert_id = raise_alert(collector)
    response = http.post(f"/v1/alerts/{alert_id}/ack", headers=tokens["analyst"])
    assert response.status_code == 200
    assert response.json()["status"] == "acknowledged"
    assert response.json()["history"][-1]["actor"] == "api:analyst"


def test_service_token_reads_and_acknowledges(http: httpx.Client,
                                              collector: Collector) -> None:
    """The config's read token still reads and acknowledges, as the `reader` analyst."""
    alert_id = raise_alert(collector)
    headers = {"authorization": f"Bearer {SERVICE_TOKEN}"}
    assert http.get("/v1/events", headers=headers).status_code == 200
    response = http.post(f"/v1/alerts/{alert_id}/ack", headers=headers)
    assert response.status_code == 200
    assert response.json()["history"][-1]["actor"] == "api:reader"


@pytest.mark.parametrize("header", [None, "Bearer awu_forged", "Bearer not-a-token"])
def test_bad_tokens_are_401_and_recorded(http: httpx.Client, collector: Collector,
                                         header: str | None) -> None:
    """A missing, forged or unknown token is 401 and an authn_token_invalid event."""
    headers = {} if header is None else {"authorization": header}
    assert http.get("/v1/events", headers=headers).status_code == 401
    assert len(actions(collector, "authn_token_invalid")) == 1


def test_a_role_change_applies_to_the_next_call(http: httpx.Client, collector: Collector,
                                                tokens: dict[str, dict[str, str]]) -> None:
    """A token carries no role of its own: the user's role at the time of the call counts."""
    alert_id = raise_alert(collector)
    accounts = Accounts(collector.config.data_dir / FILE_NAME)
    try:
        accounts.set_role("viewer", "analyst")
    finally:
        accounts.close()
    assert http.post(f"/v1/alerts/{alert_id}/ack", headers=tokens["viewer"]).status_code == 200


def test_timeline_reads_one_actor(http: httpx.Client, collector: Collector,
                                  tokens: dict[str, dict[str, str]]) -> None:
    """GET /v1/timeline returns what one IP did, for any role, and the read is recorded;
    a missing actor is a 400."""
    for ip in ("203.0.113.5", "203.0.113.6"):
        collector.pipeline.record(make_event("authn_login_fail", {"source.ip": ip}))
    answer = http.get("/v1/timeline", params={"kind": "ip", "value": "203.0.113.5"},
                      headers=tokens["viewer"])
    assert answer.status_code == 200
    assert [e["event"]["source.ip"] for e in answer.json()["events"]] == ["203.0.113.5"]
    assert [e["user.name"] for e in actions(collector, "data_access")] == ["viewer"]
    assert http.get("/v1/timeline", params={"kind": "ip"},
                    headers=tokens["viewer"]).status_code == 400


def test_dashboards_are_read_as_the_caller(http: httpx.Client, collector: Collector,
                                           tokens: dict[str, dict[str, str]]) -> None:
    """GET /v1/dashboards lists the boards the token's user may see (their own and shared
    ones); another user's private board is a 404 for them."""
    boards = Boards(collector.config.data_dir / BOARDS_FILE)
    try:
        shared = parse_export({"name": "Team", "shared": True, "panels": [
            {"title": "Failures", "kind": "timeseries", "query": "event.outcome:failure",
             "range": "1h"}]},
            "admin")
        private = parse_export({"name": "Mine"}, "analyst")
        boards.save(shared)
        boards.save(private)
    finally:
        boards.close()
    listed = http.get("/v1/dashboards", headers=tokens["viewer"]).json()["dashboards"]
    assert [(b["name"], b["panels"]) for b in listed] == [("Team", 1)]
    one = http.get(f"/v1/dashboards/{shared.id}", headers=tokens["viewer"]).json()
    assert one["panels"][0]["title"] == "Failures"
    assert http.get(f"/v1/dashboards/{private.id}",
                    headers=tokens["viewer"]).status_code == 404
    mine = http.get("/v1/dashboards", headers=tokens["analyst"]).json()["dashboards"]
    assert {b["name"] for b in mine} == {"Team", "Mine"}
