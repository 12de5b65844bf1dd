"""Lifecycle rules, settings validation and the alert actions of the vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest

from apiwatch.alerts import AlertsConfig, LifecycleError, Repository
from apiwatch.alerts.lifecycle import apply
from apiwatch.alerts.repository import slot_of
from apiwatch.detect import Alert
from apiwatch.errors import ConfigError
from apiwatch.events.vocabulary import lookup


def _alert() -> Alert:
    return Alert(rule="r", title="t", severity="high", group={"source.ip": "192.0.2.1"},
                 first_seen=1000.0, last_seen=1001.0, count=6, reason="why")


def test_allowed_moves() -> None:
    """Open can be acknowledged or resolved; acknowledged can be resolved; comments anywhere."""
    assert apply("open", "ack") == "acknowledged"
    assert apply("acknowledged", "resolve") == "resolved"
    assert apply("open", "resolve") == "resolved"
    assert apply("resolved", "comment") == "resolved"


@pytest.mark.parametrize(("status", "action"), [("resolved", "ack"), ("resolved", "resolve"),
                                                ("acknowledged", "ack")])
def test_refused_moves(status: str, action: str) -> None:
    """A resolved alert stays resolved, and an acknowledgement is not repeated."""
    with pytest.raises(LifecycleError, match=f"cannot {action}"):
        apply(status, action)  # type: ignore[arg-type]


def test_transitions_keep_who_when_and_why(tmp_path: Path) -> None:
    """Each change lands in the history with its actor and comment, in order."""
    repository = Repository(tmp_path / "a.sqlite3")
    alert = _alert()
    repository.add(alert, slot_of("r", alert.group), 1900.0, [])
    repository.transition(alert.id, "ack", "cli:ann", "looking")
    after = repository.transition(alert.id, "resolve", "api:reader", "blocked at the edge")
    assert after["status"] == "resolved"
    assert [(h["action"], h["actor"], h["comment"]) for h in after["history"]] == [
        ("raise", "apiwatch", ""), ("ack", "cli:ann", "looking"),
        ("resolve", "api:reader", "blocked at the edge")]
    with pytest.raises(LifecycleError, match="no alert"):
        repository.transition("nope", "ack", "x")
    repository.close()


def test_find_slot_covers_the_suppression_window_only(tmp_path: Path) -> None:
    """The stored alert of a rule and group is found until its suppression window ends."""
    repository = Repository(tmp_path / "a.sqlite3")
    alert = _alert()
    slot = slot_of("r", alert.group)
    repository.add(alert, slot, 1900.0, [])
    assert repository.find_slot(slot, 1899.0) == (alert.id, "open")
    assert repository.find_slot(slot, 1900.0) is None
    assert repository.find_slot(slot_of("r", {"source.ip": "192.0.2.2"}), 1500.0) is None
    repository.close()


def test_settings_parse_channels() -> None:
    """A valid [alerts] table becomes typed settings with its channels."""
    settings = AlertsConfig.from_mapping({
        "rules": ["rules/"], "replay_seconds": 600,
        "channels": [{"name": "m", "type": "email", "host": "smtp", "sender": "a@b",
                      "recipients": ["c@d"]}],
    })
    assert settings.rules == ("rules/",)
    assert settings.replay_seconds == 600.0
    assert settings.channels[0].recipients == ("c@d",)


@pytest.mark.parametrize(("table", "message"), [
    ({"bogus": 1}, "unknown key"),
    ({"replay_seconds": "soon"}, "not a valid float"),
    ({"channels": [{"name": "w", "type": "webhook", "url": "http://x"}]}, "needs secret"),
    ({"channels": [{"name": "w", "type": "pager"}]}, "not one of"),
    ({"channels": [{"name": "s", "type": "slack", "url": "u"}] * 2}, "unique"),
])
def test_settings_errors_name_the_key(table: dict[str, object], message: str) -> None:
    """A bad [alerts] table is a ConfigError that says what is wrong."""
    with pytest.raises(ConfigError, match=message):
        AlertsConfig.from_mapping(table)


def test_alert_actions_are_in_the_vocabulary() -> None:
    """alert_raised is an apiwatch action of ECS kind alert (an OCSF Detection Finding);
    alert_status_changed records lifecycle changes."""
    raised = lookup("alert_raised")
    assert (raised.origin, raised.kind, raised.ocsf_class) == ("apiwatch", "alert", 2004)
    assert lookup("alert_status_changed").origin == "apiwatch"
