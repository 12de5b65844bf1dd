"""End to end against a real `apiwatch serve`: the signed alert reaches a real webhook while
the attack is still being sent, and survives kill -9 of the collector without repeating."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from alerts_support import SECRET, Serve, post_events, webhook

from apiwatch.events import Event, make_event

ATTACKER = "203.0.113.66"
RULE = """
id: forty_failures
title: Forty failed logins from one address
severity: critical
description: needs events from both sides of a restart in the tests
filter: {event.action: authn_login_fail}
group_by: [source.ip]
window: {type: count, threshold: 40, within: 10m}
suppress: 10m
"""


def _batch(seq: int, attack: bool) -> list[Event]:
    """Twenty ordinary requests from many addresses, plus one failed login if `attack`."""
    events = [make_event("http_request", {
        "source.ip": f"192.0.2.{(seq + i) % 250 + 1}", "url.path": "/orders",
        "http.request.method": "GET", "http.response.status_code": 200,
    }) for i in range(20)]
    if attack:
        events.append(make_event("authn_login_fail",
                                 {"source.ip": ATTACKER, "user.name": f"user{seq}"}))
    return events


@pytest.mark.slow
def test_alert_arrives_during_the_attack_and_once_across_kill_9(tmp_path: Path) -> None:
    """A brute force alert reaches the webhook, HMAC-signed, before the attack's last batch
    is sent; after kill -9 mid-attack and a restart, a rule whose threshold needs failures
    from both sides of the crash still fires, and no alert is delivered twice."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "forty.yaml").write_text(RULE)
    with webhook() as hook:
        serve = Serve(tmp_path, "\n".join([
            # Relative to the collector's working directory, `tmp_path`.
            "[alerts]", 'rules = ["rules"]', "retry_base_seconds = 0.1",
            "[[alerts.channels]]", 'name = "soc"', 'type = "webhook"',
            f'url = "{hook.url}"', f'secret = "{SECRET}"']))
        serve.start()
        try:
            sent_when_alerted = None
            with httpx.Client(base_url=serve.url, timeout=30) as http:
                for seq in range(25):
                    post_events(http, _batch(seq, attack=True))
                    if sent_when_alerted is None and hook.deliveries:
                        sent_when_alerted = seq + 1
                    time.sleep(0.02)
            assert sent_when_alerted is not None, "no alert while the attack was being sent"
            assert sent_when_alerted < 25
            fast = hook.deliveries[0]
            assert fast.signed_by(SECRET)
            assert fast.alert["rule"] == "brute_force_ip_fast"
            assert fast.alert["group"] == {"source.ip": ATTACKER}

            serve.kill()
            assert not any(d.alert["rule"] == "forty_failures" for d in hook.deliveries)
            serve.start()
            with httpx.Client(base_url=serve.url, timeout=30) as http:
                for seq in range(25, 45):
                    post_events(http, _batch(seq, attack=True))
            assert hook.wait_for(
                lambda d: any(x.alert["rule"] == "forty_failures" for x in d))
            time.sleep(1.0)  # room for a wrong repeat to arrive
            metrics = httpx.get(serve.url + "/metrics").text
            assert 'apiwatch_alert_deliveries_total{channel="soc"}' in metrics
        finally:
            serve.stop()
    per_alert = Counter((d.alert["rule"], str(d.alert["group"])) for d in hook.deliveries)
    assert per_alert[("forty_failures", str({"source.ip": ATTACKER}))] == 1
    assert set(per_alert.values()) == {1}, per_alert
    assert all(d.signed_by(SECRET) for d in hook.deliveries)
