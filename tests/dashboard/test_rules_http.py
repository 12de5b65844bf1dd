"""The rules page over HTTP: every loaded rule with its state and recent alerts for anyone
who reads; switching a rule off or on is the admin's, kept across restarts, applied to the
running engine at once and recorded."""

from __future__ import annotations

import httpx
from dashboard_support import HOSTILE_TITLE, actions, csrf_of, log_in, raise_alert

from apiwatch.alerts import AlertsConfig, Detection
from apiwatch.collector.runtime import Collector
from apiwatch.events import make_event

RULE = "brute_force_ip_fast"


def _switch(http: httpx.Client, rule: str, enabled: bool) -> httpx.Response:
    page = http.get("/rules")
    return http.post(f"/rules/{rule}", data={
        "csrf": csrf_of(page.text), "enabled": "1" if enabled else "0"})


def _row(html: str, rule: str) -> str:
    return html.split(f'data-rule="{rule}"')[1].split("</tr>", maxsplit=1)[0]


def test_viewer_sees_rules_states_and_recent_alerts(http: httpx.Client,
                                                    collector: Collector) -> None:
    """The page lists catalogue and user rules with severity, kind, state and the alerts
    each raised in the last day; a viewer gets no switches."""
    raise_alert(collector)
    log_in(http, "viewer")
    page = http.get("/rules")
    assert page.status_code == 200
    row = _row(page.text, "credential_stuffing_source")
    assert "enabled" in row
    assert ">1</a>" in row
    assert "distinct" in row
    assert "catalogue/authentication.yaml" in row
    assert 'data-rule="hostile_title"' in page.text
    assert "<button" not in _row(page.text, RULE)


def test_rule_titles_from_user_yaml_are_escaped(http: httpx.Client) -> None:
    """A user rule's hostile title is shown as text, never as markup."""
    log_in(http, "viewer")
    page = http.get("/rules").text
    assert HOSTILE_TITLE not in page
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page


def test_admin_disables_a_rule_for_the_running_engine(http: httpx.Client,
                                                      collector: Collector) -> None:
    """Switched off, the rule sees no more events, the page says so, the switch is a
    sys_monitor_disabled event; switched on again, it matches again."""
    log_in(http, "admin")
    assert _switch(http, RULE, enabled=False).status_code == 303
    assert "disabled" in _row(http.get("/rules").text, RULE)
    [event] = actions(collector, "sys_monitor_disabled")
    assert (event["user.name"], event["rule.id"]) == ("admin", RULE)
    fail = make_event("authn_login_fail", {"source.ip": "203.0.113.7", "user.name": "x"})
    stats = collector.detection.engine.stats.rules[RULE]
    collector.pipeline.record(dict(fail))
    assert stats.matched == 0
    assert _switch(http, RULE, enabled=True).status_code == 303
    collector.pipeline.record(dict(fail))
    assert stats.matched == 1
    assert len(actions(collector, "sys_monitor_enabled")) == 1


def test_a_switched_off_rule_stays_off_after_a_restart(http: httpx.Client,
                                                       collector: Collector) -> None:
    """The switch is kept in the data directory: a new engine starts with the rule off."""
    log_in(http, "admin")
    _switch(http, RULE, enabled=False)
    restarted = Detection(collector.pipeline, AlertsConfig(), collector.config.data_dir)
    try:
        assert RULE in restarted.engine.disabled
    finally:
        restarted.close()


def test_viewer_and_analyst_cannot_switch_rules(http: httpx.Client,
                                                collector: Collector) -> None:
    """A switch by a viewer or analyst is 403 and an authz_fail event; the rule stays on."""
    for role in ("viewer", "analyst"):
        log_in(http, role)
        assert _switch(http, RULE, enabled=False).status_code == 403
    assert [e["user.name"] for e in actions(collector, "authz_fail")] == ["analyst", "viewer"]
    assert not collector.detection.engine.disabled
    assert not actions(collector, "sys_monitor_disabled")


def test_a_switch_needs_the_csrf_token(http: httpx.Client, collector: Collector) -> None:
    """An admin's switch without the session's CSRF token is refused and changes nothing."""
    log_in(http, "admin")
    assert http.post(f"/rules/{RULE}", data={"enabled": "0"}).status_code == 403
    assert not collector.detection.engine.disabled


def test_unknown_rule_is_404(http: httpx.Client) -> None:
    """Switching a rule that is not loaded is a 404."""
    log_in(http, "admin")
    assert _switch(http, "no_such_rule", enabled=False).status_code == 404
