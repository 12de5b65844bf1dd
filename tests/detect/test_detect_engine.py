"""The engine's bounds: memory caps, lateness, dedup, resets and the action index."""

from __future__ import annotations

from detect_traffic import START, event

from apiwatch.detect import Engine, parse_rules_text

BUCKET = """
id: bf
filter: {event.action: authn_login_fail}
group_by: [source.ip]
window: {type: leaky_bucket, capacity: 2, leak: 10s}
suppress: 10m
"""


def _fail(ip: str, ts: float) -> dict[str, object]:
    return event("authn_login_fail", ts, {"source.ip": ip})


def test_cap_evicts_least_recent_group_and_counts_it() -> None:
    """A rule holding max_keys groups evicts the least recently active one, and counts it."""
    engine = Engine(parse_rules_text(BUCKET, "t"), max_keys=100)
    for i in range(250):
        engine.process(_fail(f"10.0.{i // 256}.{i % 256}", START + i * 0.001))
    stats = engine.stats.rules["bf"]
    assert stats.evicted_cap == 150
    engine.advance(START + 1)
    assert engine.stats.rules["bf"].groups == 100


def test_idle_groups_are_evicted_after_their_horizon() -> None:
    """Groups idle for longer than their window's horizon are dropped, and counted."""
    engine = Engine(parse_rules_text(BUCKET, "t"))
    for i in range(50):
        engine.process(_fail(f"10.0.0.{i}", START))
    engine.advance(START + 86_400)
    assert engine.stats.rules["bf"].evicted_idle == 50
    assert engine.stats.rules["bf"].groups == 0


def test_events_beyond_lateness_are_counted_not_used() -> None:
    """An event older than the allowed lateness is counted as late and changes no window."""
    engine = Engine(parse_rules_text(BUCKET, "t"), lateness=30)
    engine.process(_fail("10.0.0.1", START + 100))
    late = [engine.process(_fail("10.0.0.2", START)) for _ in range(5)]
    assert engine.stats.late == 5
    assert late == [[]] * 5
    assert engine.stats.rules["bf"].matched == 1


def test_out_of_order_within_lateness_is_used() -> None:
    """An event late by less than the allowed lateness still counts."""
    engine = Engine(parse_rules_text(BUCKET, "t"), lateness=30)
    engine.process(_fail("10.0.0.1", START + 20))
    alerts = [a for t in (START + 10, START + 15) for a in engine.process(_fail("10.0.0.1", t))]
    assert engine.stats.late == 0
    assert [a.rule for a in alerts] == ["bf"]


def test_one_alert_per_group_per_suppression_window() -> None:
    """Repeats within the suppression window fold into the open alert with a suppressed count;
    after the window a new alert is raised."""
    engine = Engine(parse_rules_text(BUCKET, "t"))
    alerts = []
    for i in range(30):  # 30 failures, one a second: the bucket overflows every few events
        alerts += engine.process(_fail("10.0.0.1", START + i))
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.suppressed >= 5
    assert alert.count == 30
    assert alert.last_seen == START + 29
    assert len(alert.event_ids) == 10
    later = [a for i in range(3) for a in engine.process(_fail("10.0.0.1", START + 700 + i))]
    assert len(later) == 1
    assert later[0].id != alert.id


def test_alert_json_shape() -> None:
    """An alert's JSON has the fields of the issue, group keyed by ECS names."""
    engine = Engine(parse_rules_text(BUCKET, "t"))
    alerts = [a for i in range(3) for a in engine.process(_fail("203.0.113.7", START + i))]
    body = alerts[0].to_json()
    assert {"id", "rule", "severity", "status", "group", "count", "first_seen", "last_seen",
            "event_ids", "suppressed"} <= set(body)
    assert body["group"] == {"source.ip": "203.0.113.7"}
    assert body["status"] == "open"
    assert body["first_seen"] == "2026-01-01T00:00:00.000000Z"
    assert body["count"] == 3


def test_reset_on_clears_group_state() -> None:
    """An event matching `reset_on` clears its group's window."""
    rules = parse_rules_text(BUCKET + "reset_on: {event.action: authn_login_success}\n", "t")
    engine = Engine(rules)
    engine.process(_fail("10.0.0.1", START))
    engine.process(_fail("10.0.0.1", START + 0.1))
    engine.process(event("authn_login_success", START + 0.2, {"source.ip": "10.0.0.1"}))
    assert engine.process(_fail("10.0.0.1", START + 0.3)) == []


def test_events_only_visit_rules_for_their_action() -> None:
    """A rule restricted to some actions never sees other actions' events."""
    engine = Engine(parse_rules_text(BUCKET, "t"))
    for i in range(100):
        engine.process(event("http_request", START + i, {"source.ip": "10.0.0.1"}))
    assert engine.stats.rules["bf"].matched == 0
    assert engine.stats.rules["bf"].groups == 0


def test_group_by_alternatives_name_the_field_used() -> None:
    """`a|b` groups by the first field present, and the alert names that field."""
    text = """
id: authz
filter: {event.action: authz_fail}
group_by: [user.name|source.ip]
window: {type: count, threshold: 2, within: 1m}
"""
    engine = Engine(parse_rules_text(text, "t"))
    alerts = [a for i in range(2)
              for a in engine.process(event("authz_fail", START + i, {"source.ip": "10.0.0.9"}))]
    assert alerts[0].group == {"source.ip": "10.0.0.9"}


def test_silent_source_needs_advance() -> None:
    """A silent source is reported by advance(now), once per silence."""
    text = """
id: quiet
filter: {apiwatch.source: {exists: true}}
group_by: [apiwatch.source]
window: {type: absence, factor: 5, min_silence: 60s, min_events: 3}
"""
    engine = Engine(parse_rules_text(text, "t"))
    for i in range(10):
        engine.process(event("http_request", START + i * 10, {"apiwatch.source": "s1"}))
    assert engine.advance(START + 120) == []
    alerts = engine.advance(START + 500)
    assert [a.group for a in alerts] == [{"apiwatch.source": "s1"}]
    assert engine.advance(START + 900) == []


def test_untimed_events_are_counted() -> None:
    """An event without a readable @timestamp is counted, not evaluated."""
    engine = Engine(parse_rules_text(BUCKET, "t"))
    assert engine.process({"event.action": "authn_login_fail", "@timestamp": "yesterday"}) == []
    assert engine.stats.untimed == 1


def test_an_offset_timestamp_is_not_read_as_utc() -> None:
    """`+01:00` after a `Z` stamp with the same digits is an hour earlier, hence late."""
    engine = Engine(parse_rules_text(BUCKET, "t"), lateness=30)
    utc = {"@timestamp": "2026-11-27T10:00:00.500000Z", "event.action": "authn_login_fail",
           "source.ip": "10.0.0.1"}
    engine.process(utc)
    engine.process({**utc, "@timestamp": "2026-11-27T10:00:00.500000+01:00"})
    assert engine.stats.late == 1
