"""Detection glue in-process: alerts stored, recorded in the ledger, delivered, deduplicated,
and rebuilt after a restart from the ledger."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from alerts_support import (
    SECRET,
    alerts_table,
    channel,
    failed_login,
    open_collector,
    wait_until,
    webhook,
)

ATTACKER = "203.0.113.7"


def _rule_file(folder: Path) -> Path:
    """A rule that needs 30 failures from one address within 10 minutes."""
    folder.mkdir()
    (folder / "slow.yaml").write_text(
        "id: thirty_failures\ntitle: Thirty failures\nseverity: high\n"
        "description: test rule\nfilter: {event.action: authn_login_fail}\n"
        "group_by: [source.ip]\nwindow: {type: count, threshold: 30, within: 10m}\n"
        "suppress: 10m\n")
    return folder


def test_an_attack_is_stored_recorded_and_delivered_signed(tmp_path: Path) -> None:
    """A brute force raises one alert: a repository row, an alert_raised ledger record, and a
    webhook POST whose HMAC-SHA256 signature checks out."""
    with webhook() as hook:
        collector = open_collector(tmp_path, alerts_table(channel(hook.url)))
        try:
            for _ in range(8):
                collector.pipeline.ingest("app", [failed_login(ATTACKER)])
            assert hook.wait_for(lambda d: len(d) >= 1)
            delivery = hook.deliveries[0]
            assert delivery.signed_by(SECRET)
            assert not delivery.signed_by("another secret")
            alert = delivery.alert
            assert alert["rule"] == "brute_force_ip_fast"
            assert alert["group"] == {"source.ip": ATTACKER}
            assert alert["status"] == "open"
            assert "source.ip%3A%22203.0.113.7%22" in alert["timeline"]
            ledger = collector.ledger
            records = [orjson.loads(ledger.read(i)) for i in range(ledger.size)]
            raised = [r for r in records if r["event.action"] == "alert_raised"]
            assert [r["apiwatch.alert.id"] for r in raised] == [alert["id"]]
            assert raised[0]["source.ip"] == ATTACKER
        finally:
            collector.close()


def test_repeats_are_suppressed_and_counted(tmp_path: Path) -> None:
    """Failures after the alert fold into it: one alert, a suppressed count, a higher count."""
    collector = open_collector(tmp_path, alerts_table())
    try:
        repository = collector.detection.repository
        for _ in range(6):
            collector.pipeline.ingest("app", [failed_login(ATTACKER)])
        assert wait_until(lambda: len(repository.select(rule="brute_force_ip_fast")) == 1)
        first = repository.select(rule="brute_force_ip_fast")[0]
        for _ in range(20):
            collector.pipeline.ingest("app", [failed_login(ATTACKER)])
        collector.tick()
        [alert] = repository.select(rule="brute_force_ip_fast")
        assert alert["id"] == first["id"]
        assert alert["suppressed"] > 0
        assert alert["count"] > first["count"]
    finally:
        collector.close()


def test_restart_rebuilds_windows_from_the_ledger(tmp_path: Path) -> None:
    """Twenty failures before a restart and ten after fire a 30-failure rule: the window was
    rebuilt from the ledger."""
    table = alerts_table(rules=[str(_rule_file(tmp_path / "rules"))], catalogue=False)
    data = tmp_path / "data"
    collector = open_collector(data, table)
    for _ in range(20):
        collector.pipeline.ingest("app", [failed_login(ATTACKER)])
    collector.close()
    collector = open_collector(data, table)
    try:
        for _ in range(10):
            collector.pipeline.ingest("app", [failed_login(ATTACKER)])
        repository = collector.detection.repository
        assert wait_until(lambda: len(repository.select()) == 1)
        assert repository.select()[0]["count"] == 30
    finally:
        collector.close()


def test_replay_does_not_raise_a_stored_episode_again(tmp_path: Path) -> None:
    """After a restart the replay meets the attack's alert again but neither stores nor sends
    it a second time, and later repeats fold into the stored alert."""
    with webhook() as hook:
        table = alerts_table(channel(hook.url))
        collector = open_collector(tmp_path, table)
        for _ in range(8):
            collector.pipeline.ingest("app", [failed_login(ATTACKER)])
        assert hook.wait_for(lambda d: len(d) == 1)
        collector.close()
        collector = open_collector(tmp_path, table)
        try:
            for _ in range(8):
                collector.pipeline.ingest("app", [failed_login(ATTACKER)])
            collector.tick()
            time.sleep(0.3)  # give a wrong second delivery the time to arrive
            fast = [d for d in hook.deliveries if d.alert["rule"] == "brute_force_ip_fast"]
            assert len(fast) == 1
            [alert] = collector.detection.repository.select(rule="brute_force_ip_fast")
            assert alert["suppressed"] > 0
        finally:
            collector.close()


def test_min_severity_keeps_low_alerts_off_a_channel(tmp_path: Path) -> None:
    """A channel with min_severity critical gets no high alert; the alert is still stored."""
    with webhook() as hook:
        collector = open_collector(
            tmp_path, alerts_table(channel(hook.url, min_severity="critical")))
        try:
            for _ in range(8):
                collector.pipeline.ingest("app", [failed_login(ATTACKER)])
            repository = collector.detection.repository
            assert wait_until(lambda: len(repository.select(rule="brute_force_ip_fast")) == 1)
            alert_id = repository.select(rule="brute_force_ip_fast")[0]["id"]
            assert repository.outbox_rows(alert_id) == []
        finally:
            collector.close()
        assert hook.deliveries == []


def test_sigma_rules_in_the_rules_folder_run_in_the_collector(tmp_path: Path) -> None:
    """A Sigma correlation rule dropped in `[alerts] rules` raises its alert on live ingest,
    like an apiwatch YAML rule does."""
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "failed_logins.yml").write_text(
        "title: Failed login\nid: 5a1b0000-0000-4000-8000-000000000001\nname: failed_login\n"
        "logsource: {category: authentication}\n"
        "detection:\n  selection: {event.action: authn_login_fail}\n  condition: selection\n"
        "---\n"
        "title: Many failed logins from one address\nid: 5a1b0000-0000-4000-8000-000000000002\n"
        "correlation:\n  type: event_count\n  rules: [failed_login]\n"
        "  group-by: [source.ip]\n  timespan: 5m\n  condition: {gte: 5}\n"
        "level: high\n")
    table = alerts_table(rules=[str(folder)], catalogue=False)
    collector = open_collector(tmp_path / "data", table)
    try:
        for _ in range(5):
            collector.pipeline.ingest("app", [failed_login(ATTACKER)])
        wait_until(lambda: collector.detection.repository.select() != [])  # detection's thread
        raised = collector.detection.repository.select()
        assert [(a["rule"], a["group"]) for a in raised] == [
            ("5a1b0000-0000-4000-8000-000000000002", {"source.ip": ATTACKER})
        ]
    finally:
        collector.close()
