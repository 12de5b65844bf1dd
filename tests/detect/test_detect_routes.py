"""How the engine reads and routes events: event time, compiled routes, shared field reads."""

from __future__ import annotations

from detect_traffic import START, event

from apiwatch.detect import Engine, load_catalogue, parse_rules_text

EACH = """
id: every
filter: {event.action: authz_change}
group_by: [user.name]
window: {type: each}
suppress: 0s
"""


def test_event_time_is_read_from_utc_and_offset_stamps() -> None:
    """The event time of a stamp in UTC or with an offset, with or without a fraction, is exact;
    a stamp that is not a time is counted as untimed."""
    engine = Engine(parse_rules_text(EACH, "t"))
    stamps = {
        "2026-01-01T00:00:00Z": START,
        "2026-01-01T00:00:01.25Z": START + 1.25,
        "2026-01-01T01:00:02.5+01:00": START + 2.5,
        "2026-01-01T00:00:03.000001Z": START + 3.000001,
        "2026-01-01T00:00:03.5Z": START + 3.5,  # the same second again, from the cache
    }
    seen = [alert.last_seen for stamp in [*stamps, "2026-13-01T00:00:04Z", "2026-01-01T00:00:05Z!"]
            for alert in engine.process({"@timestamp": stamp, "event.action": "authz_change",
                                         "user.name": "u1"})]
    assert seen == list(stamps.values())
    assert engine.stats.untimed == 2


def test_events_the_rules_treat_alike_share_a_compiled_route() -> None:
    """A stream of odd methods and status codes compiles a handful of routes, not one per
    value: events for which every rule's filter leaves the same tests share one."""
    engine = Engine(load_catalogue())
    for i in range(600):
        engine.process(event("http_request", START + i * 0.01, {
            "source.ip": "198.51.100.7", "http.request.method": f"M{i}",
            "http.response.status_code": 100 + i % 500, "url.path": f"/api/{i}"}))
    assert engine.stats.events == 600
    assert engine.stats.routes <= 40


def test_rules_reading_the_same_list_field_each_group_by_it() -> None:
    """Rules that test and group by the same field all see its value; a list groups by the
    whole list."""
    text = """
id: first
filter: {event.action: authz_fail, user.name: {exists: true}}
group_by: [user.name]
window: {type: count, threshold: 2, within: 1m}
---
id: second
filter: {event.action: authz_fail, user.name: [alice]}
group_by: [user.name, source.ip]
window: {type: count, threshold: 2, within: 1m}
"""
    engine = Engine(parse_rules_text(text, "t"))
    alerts = [a for i in range(2) for a in engine.process(event(
        "authz_fail", START + i, {"user.name": ["alice", "bob"], "source.ip": "10.0.0.1"}))]
    assert {a.rule: a.group for a in alerts} == {
        "first": {"user.name": ["alice", "bob"]},
        "second": {"user.name": ["alice", "bob"], "source.ip": "10.0.0.1"},
    }


def test_a_sequence_is_opened_only_by_its_first_step() -> None:
    """Events that cannot match a sequence's first step hold no group for it (the step's
    outcome routes them away), and the sequence still fires in order."""
    text = """
id: fails_then_success
filter: {event.action: [authn_login_fail, authn_login_success]}
group_by: [source.ip]
window:
  type: sequence
  within: 10m
  steps:
    - {filter: {event.outcome: failure}, min: 2, label: failure}
    - {filter: {event.outcome: success}, label: success}
"""
    engine = Engine(parse_rules_text(text, "t"))
    ip = {"source.ip": "10.0.0.1"}
    for i in range(5):
        assert engine.process(event("authn_login_success", START + i, ip)) == []
    engine.advance(START + 5)
    assert engine.stats.rules["fails_then_success"].groups == 0
    raised = [a for i, action in enumerate(["authn_login_fail", "authn_login_fail",
                                            "authn_login_success"])
              for a in engine.process(event(action, START + 10 + i, ip))]
    assert [a.rule for a in raised] == ["fails_then_success"]


def test_an_event_with_a_list_where_a_routing_value_belongs_still_meets_every_rule() -> None:
    """A routing field holding a list (a hand-made event) cannot pick a route: the event goes
    through every rule with its whole filter, and matches when an element does."""
    text = """
id: by_status
filter: {http.response.status_code: 404}
group_by: [source.ip]
window: {type: count, threshold: 2, within: 1m}
"""
    engine = Engine(parse_rules_text(text, "t"))
    alerts = [a for i in range(2) for a in engine.process(event("http_request", START + i, {
        "source.ip": "10.0.0.1", "http.response.status_code": [404, 410]}))]
    assert [a.rule for a in alerts] == ["by_status"]
