"""The dashboard over HTTP: login, roles, CSRF, logout, throttling, headers, pages, exports."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from dashboard_support import (
    PASSWORD,
    actions,
    csrf_of,
    hostile_events,
    log_in,
    payloads,
    raise_alert,
)

from apiwatch.collector.runtime import Collector


class TestLogin:
    def test_pages_redirect_to_login(self, http: httpx.Client) -> None:
        """Without a session a page answers 303 to the login form, keeping the target."""
        response = http.get("/events?q=x")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Fevents%3Fq%3Dx"

    def test_session_cookie_flags(self, http: httpx.Client) -> None:
        """The session cookie is HttpOnly and SameSite=Strict (Secure needs TLS)."""
        response = log_in(http, "viewer")
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert http.get("/").status_code == 200

    def test_login_without_form_token_is_refused(self, http: httpx.Client) -> None:
        """A login POST without the login CSRF token is refused."""
        response = http.post("/login", data={"username": "admin", "password": PASSWORD})
        assert response.status_code == 403
        assert "apiwatch_session" not in response.headers.get("set-cookie", "")

    def test_failed_logins_are_events_and_throttled(
            self, http: httpx.Client, collector: Collector) -> None:
        """Each failure is an authn_login_fail event; past the limit logins get 429,
        even with the right password, and are still recorded."""
        for _ in range(3):
            assert log_in(http, "admin", "wrong password!").status_code == 401
        throttled = log_in(http, "admin")
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0
        failures = actions(collector, "authn_login_fail")
        assert len(failures) == 4
        assert {f.get("user.name") for f in failures} == {"admin"}
        assert all(f.get("source.ip") == "127.0.0.1" for f in failures)

    def test_failed_logins_raise_the_brute_force_alert(
            self, http: httpx.Client, collector: Collector) -> None:
        """The catalogue's brute-force rules see dashboard login failures."""
        for name in ("a1", "a2", "a3", "a4", "a5", "a6", "a7"):
            log_in(http, name, "wrong password!")
        deadline = time.time() + 10
        alerts: list[dict[str, object]] = []
        while time.time() < deadline and not alerts:
            alerts = collector.detection.repository.select(rule="brute_force_ip_fast")
            time.sleep(0.05)
        assert alerts, "no brute-force alert for the dashboard's own failed logins"

    def test_logged_out_cookie_no_longer_works(self, http: httpx.Client,
                                               base_url: str) -> None:
        """After logout, a copy of the session cookie is refused."""
        log_in(http, "analyst")
        stolen = dict(http.cookies)
        page = http.get("/")
        assert http.post("/logout", data={"csrf": csrf_of(page.text)}).status_code == 303
        with httpx.Client(base_url=base_url, cookies=stolen) as other:
            assert other.get("/", follow_redirects=False).status_code == 303
        assert _is_login(http.get("/"))


def _is_login(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith("/login")


class TestRoles:
    def test_viewer_cannot_acknowledge(self, http: httpx.Client,
                                       collector: Collector) -> None:
        """A viewer's ack is 403, an authz_fail event, and the alert stays open."""
        alert_id = raise_alert(collector)
        log_in(http, "viewer")
        page = http.get(f"/alerts/{alert_id}")
        assert page.status_code == 200
        assert "do-ack" not in page.text
        response = http.post(f"/alerts/{alert_id}/ack", data={"csrf": csrf_of(page.text)})
        assert response.status_code == 403
        assert collector.detection.repository.get(alert_id)["status"] == "open"  # type: ignore[index]
        refusals = actions(collector, "authz_fail")
        assert [r["user.name"] for r in refusals] == ["viewer"]

    @pytest.mark.parametrize("form", [
        {"op": "add", "name": "mallory", "role": "admin", "password": PASSWORD},
        {"op": "token", "name": "admin"},
        {"op": "role", "name": "viewer", "role": "admin"},
        {"op": "delete", "name": "admin"},
        {"op": "revoke", "token": "0123456789abcdef"}])
    def test_viewer_and_analyst_cannot_manage_users_or_tokens(
            self, http: httpx.Client, collector: Collector, form: dict[str, str]) -> None:
        """Reading the users and tokens page and every change there need the admin role
        (403 and an event)."""
        for role in ("viewer", "analyst"):
            log_in(http, role)
            assert http.get("/admin/users").status_code == 403
            csrf = csrf_of(http.get("/").text)
            assert http.post("/admin/users", data={**form, "csrf": csrf}).status_code == 403
        assert len(actions(collector, "authz_fail")) == 4
        log_in(http, "admin")
        assert "mallory" not in http.get("/admin/users").text

    def test_analyst_acknowledges_and_admin_issues_tokens(
            self, http: httpx.Client, collector: Collector) -> None:
        """An analyst acks (history names them); an admin's token reads the JSON API."""
        alert_id = raise_alert(collector)
        log_in(http, "analyst")
        page = http.get(f"/alerts/{alert_id}")
        response = http.post(f"/alerts/{alert_id}/ack",
                             data={"csrf": csrf_of(page.text), "comment": "on it"})
        assert response.status_code == 303
        stored = collector.detection.repository.get(alert_id)
        assert stored is not None
        assert stored["status"] == "acknowledged"
        assert stored["history"][-1]["actor"] == "dashboard:analyst"
        assert actions(collector, "alert_status_changed")
        log_in(http, "admin")
        page = http.get("/admin/users")
        issued = http.post("/admin/users", data={
            "csrf": csrf_of(page.text), "op": "token", "name": "viewer"})
        token = issued.text.split('id="new-token">')[1].split("<")[0]
        http.cookies.clear()
        api = http.get("/api/alerts", headers={"authorization": f"Bearer {token}"})
        assert api.status_code == 200
        assert alert_id in [a["id"] for a in api.json()["alerts"]]

    def test_unknown_api_token_is_refused_and_recorded(
            self, http: httpx.Client, collector: Collector) -> None:
        """A bad bearer token is 401 and an authn_token_invalid event."""
        response = http.get("/api/alerts", headers={"authorization": "Bearer awu_nope"})
        assert response.status_code == 401
        assert actions(collector, "authn_token_invalid")


class TestCsrf:
    @pytest.mark.parametrize("token", [None, "", "forged-token"])
    def test_state_changes_need_the_session_token(
            self, http: httpx.Client, collector: Collector, token: str | None) -> None:
        """A POST with a missing or wrong CSRF token is 403 and changes nothing."""
        alert_id = raise_alert(collector)
        log_in(http, "admin")
        data = {} if token is None else {"csrf": token}
        assert http.post(f"/alerts/{alert_id}/ack", data=data).status_code == 403
        assert http.post("/dashboards", data={**data, "name": "x"}).status_code == 403
        assert http.post("/logout", data=data).status_code == 403
        assert collector.detection.repository.get(alert_id)["status"] == "open"  # type: ignore[index]
        assert http.get("/").status_code == 200  # still logged in


class TestPages:
    def test_security_headers(self, http: httpx.Client) -> None:
        """Every dashboard answer carries a CSP without inline script, and anti-framing."""
        log_in(http, "viewer")
        for path in ("/", "/login", "/static/app.js"):
            headers = http.get(path).headers
            csp = headers["content-security-policy"]
            assert "script-src 'self'" in csp
            assert "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp
            assert headers["x-frame-options"] == "DENY"
            assert headers["referrer-policy"] == "no-referrer"

    def test_no_inline_script_or_style_in_pages(self, http: httpx.Client,
                                                collector: Collector) -> None:
        """Pages need no inline script, event handler or style attribute (CSP holds)."""
        alert_id = raise_alert(collector)
        log_in(http, "admin")
        for path in ("/", "/events", "/alerts", f"/alerts/{alert_id}", "/sources",
                     "/dashboards", "/admin/users", "/actor?kind=ip&value=198.51.100.66"):
            html = http.get(path).text
            for needle in ("<script>", " style=", " onload=", " onclick="):
                assert needle not in html, (path, needle)

    def test_payloads_are_escaped_everywhere(self, http: httpx.Client, collector: Collector,
                                             shared_data: Path) -> None:
        """Hostile user agents, user names, paths and queries appear escaped as text."""
        texts = payloads(shared_data)
        collector.pipeline.ingest("app", hostile_events(texts))
        raise_alert(collector)
        log_in(http, "admin")
        for path in ("/events?limit=500", "/actor?kind=ip&value=198.51.100.66", "/"):
            html = http.get(path).text
            for marker in ("<script>window.__xss", "<svg onload", "<img src=x onerror"):
                assert marker not in html, (path, marker)
            if path != "/":  # the overview shows top values only, not every event
                assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html, path
                assert "{{7*7}}" in html, path

    def test_event_search_pages_and_exports(self, http: httpx.Client,
                                            collector: Collector) -> None:
        """Search filters, pages with a cursor, exports JSON lines and formula-safe CSV,
        and each read is a data_access event naming the user."""
        events = hostile_events([f"user{i}" for i in range(60)] + ["=cmd|' /C calc'!A0"])
        collector.pipeline.ingest("app", events)
        log_in(http, "viewer")
        page = http.get("/events", params={"q": "event.action:authn_login_fail",
                                           "limit": "50"})
        assert page.status_code == 200
        assert page.text.count('class="f-event-action"') == 50
        assert 'id="next-page"' in page.text
        lines = http.get("/events.jsonl", params={"q": "event.action:authn_login_fail"})
        assert len(lines.text.splitlines()) == 61
        assert json.loads(lines.text.splitlines()[0])["event.action"] == "authn_login_fail"
        table = http.get("/events.csv", params={"q": "event.action:authn_login_fail"}).text
        assert "'=cmd" in table
        assert "\n=cmd" not in table
        assert ",=cmd" not in table
        reads = actions(collector, "data_access")
        assert {r["user.name"] for r in reads} == {"viewer"}

    def test_bad_query_is_a_400_page(self, http: httpx.Client) -> None:
        """A filter that does not parse is explained, not a 500."""
        log_in(http, "viewer")
        response = http.get("/events", params={"q": "(((("})
        assert response.status_code == 400
        assert "bad query" in response.text

    def test_open_redirect_is_refused(self, http: httpx.Client) -> None:
        """A `next` pointing off-site sends the user to / instead."""
        page = http.get("/login")
        response = http.post("/login", data={"csrf": csrf_of(page.text), "username": "viewer",
                                             "password": PASSWORD, "next": "//evil.example/"})
        assert response.headers["location"] == "/"


class TestBoards:
    def test_build_export_and_import(self, http: httpx.Client, collector: Collector) -> None:
        """An analyst builds a two-panel dashboard, exports it and imports the export."""
        collector.pipeline.ingest("app", hostile_events(["alice", "bob"]))
        log_in(http, "analyst")
        csrf = csrf_of(http.get("/dashboards").text)
        created = http.post("/dashboards", data={"csrf": csrf, "name": "Logins"})
        assert created.status_code == 303
        url = created.headers["location"]
        for panel in ({"title": "Failures", "kind": "timeseries",
                       "query": "event.outcome:failure"},
                      {"title": "Who", "kind": "top", "field": "user.name"}):
            response = http.post(url, data={"csrf": csrf, "op": "add", "range": "1h", **panel})
            assert response.status_code == 303
        shown = http.get(url).text
        assert "Failures" in shown
        assert "Who" in shown
        assert "alice" in shown
        exported = http.get(url + ".json").json()
        assert [p["kind"] for p in exported["panels"]] == ["timeseries", "top"]
        exported["name"] = "Copy"
        imported = http.post("/dashboards", data={"csrf": csrf,
                                                  "import": json.dumps(exported)})
        assert "Who" in http.get(imported.headers["location"]).text

    def test_invalid_panels_are_refused(self, http: httpx.Client) -> None:
        """A panel with a bad kind, field or query is a 400."""
        log_in(http, "analyst")
        csrf = csrf_of(http.get("/dashboards").text)
        url = http.post("/dashboards", data={"csrf": csrf, "name": "B"}).headers["location"]
        for bad in ({"kind": "pie"}, {"kind": "top", "field": "message"},
                    {"kind": "number", "query": "(("}):
            response = http.post(url, data={"csrf": csrf, "op": "add", "title": "t",
                                            "range": "1h", **bad})
            assert response.status_code == 400

    def test_private_boards_are_private_and_viewers_cannot_build(
            self, http: httpx.Client, base_url: str) -> None:
        """A private board is a 404 for others; a viewer cannot create one."""
        log_in(http, "analyst")
        csrf = csrf_of(http.get("/dashboards").text)
        url = http.post("/dashboards", data={"csrf": csrf, "name": "Mine"}).headers["location"]
        with httpx.Client(base_url=base_url) as other:
            log_in(other, "viewer")
            assert other.get(url).status_code == 404
            csrf = csrf_of(other.get("/").text)
            assert other.post("/dashboards", data={"csrf": csrf, "name": "x"}).status_code == 403
