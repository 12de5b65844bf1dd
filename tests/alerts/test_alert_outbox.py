"""The durable outbox: retries with backoff, at-least-once across restarts, failing channels."""

from __future__ import annotations

from pathlib import Path

from alerts_support import (
    alerts_table,
    channel,
    failed_login,
    open_collector,
    wait_until,
    webhook,
)

from apiwatch.alerts import Outbox, Repository, backoff
from apiwatch.alerts.channels import build_channel
from apiwatch.alerts.detection import CHANNEL_RULE
from apiwatch.alerts.settings import ChannelConfig
from apiwatch.detect import Alert

ATTACKER = "198.51.100.9"


def _alert(rule: str = "r1") -> Alert:
    return Alert(rule=rule, title="t", severity="high", group={"source.ip": ATTACKER},
                 first_seen=1e9, last_seen=1e9, count=1, reason="test")


def test_backoff_doubles_up_to_the_cap() -> None:
    """Retry delays double per failed attempt and stop growing at the cap."""
    assert [backoff(n, 1.0, 10.0) for n in range(6)] == [1, 2, 4, 8, 10, 10]


def test_a_receiver_that_comes_back_gets_the_alert(tmp_path: Path) -> None:
    """While the receiver answers 503 the delivery is retried; once it is back, the alert
    arrives exactly once and the row records the failed attempts."""
    with webhook() as hook:
        hook.status = 503
        collector = open_collector(tmp_path, alerts_table(channel(hook.url)))
        try:
            for _ in range(6):
                collector.pipeline.ingest("app", [failed_login(ATTACKER)])
            assert wait_until(lambda: hook.refused >= 3)
            hook.status = 200
            assert hook.wait_for(lambda d: len(d) == 1)
            alert_id = hook.deliveries[0].alert["id"]
            repository = collector.detection.repository
            # The receiver counts the POST before answering it; the row is marked after.
            assert wait_until(lambda: repository.outbox_rows(alert_id)[0]["delivered"])
            assert repository.outbox_rows(alert_id)[0]["attempts"] >= 4
        finally:
            collector.close()


def test_a_delivered_alert_is_not_sent_again_after_a_restart(tmp_path: Path) -> None:
    """A new outbox over the same database sends only what was not delivered yet."""
    repository = Repository(tmp_path / "alerts.sqlite3")
    with webhook() as hook:
        sent, pending = _alert("sent"), _alert("pending")
        repository.add(sent, "s1", 2e9, ["hook"])
        config = ChannelConfig("hook", "webhook", url=hook.url, secret="k")
        first = Outbox(repository, [build_channel(config)], base=0.05, cap=0.1, threshold=5,
                       on_failing=lambda *a: None)
        first.start()
        assert hook.wait_for(lambda d: len(d) == 1)
        first.stop()
        repository.add(pending, "s2", 2e9, ["hook"])
        second = Outbox(repository, [build_channel(config)], base=0.05, cap=0.1, threshold=5,
                        on_failing=lambda *a: None)
        second.start()
        assert hook.wait_for(lambda d: len(d) == 2)
        second.stop()
        assert [d.alert["rule"] for d in hook.deliveries] == ["sent", "pending"]
    repository.close()


def test_a_failing_channel_raises_its_own_alert_on_the_others(tmp_path: Path) -> None:
    """After `failure_threshold` failures in a row a channel raises alert_channel_failing,
    which reaches the working channel and not the failing one."""
    with webhook() as broken, webhook() as working:
        broken.status = 500
        table = alerts_table(channel(broken.url, name="broken"),
                             channel(working.url, name="working"), failure_threshold=3)
        collector = open_collector(tmp_path, table)
        try:
            for _ in range(6):
                collector.pipeline.ingest("app", [failed_login(ATTACKER)])
            assert working.wait_for(
                lambda d: any(x.alert["rule"] == CHANNEL_RULE for x in d))
            failing = next(x.alert for x in working.deliveries if x.alert["rule"] == CHANNEL_RULE)
            assert failing["group"] == {"apiwatch.channel": "broken"}
            rows = collector.detection.repository.outbox_rows(failing["id"])
            assert [r["channel"] for r in rows] == ["working"]
        finally:
            collector.close()
