"""/metrics shows each SIEM destination's deliveries, failures and position."""

from __future__ import annotations

from dataclasses import dataclass, field

from apiwatch.server.metrics import Metrics


@dataclass
class FakeForwarder:
    """Stands in for `apiwatch.forward.Forwarder`: /metrics reads only these three mappings."""

    sent: dict[str, int] = field(default_factory=lambda: {"splunk": 40, "soc": 0})
    failures: dict[str, int] = field(default_factory=lambda: {"splunk": 0, "soc": 3})
    positions: dict[str, int] = field(default_factory=lambda: {"splunk": 41, "soc": 0})


def test_forwarding_counts_are_read_at_scrape_time() -> None:
    """The figures are the forwarder's current ones, per destination, in Prometheus names."""
    forwarder = FakeForwarder()
    metrics = Metrics()
    metrics.watch_forwarding(forwarder)
    forwarder.sent["soc"] = 7
    text = metrics.render().decode()
    assert 'apiwatch_forward_events_total{destination="splunk"} 40.0' in text
    assert 'apiwatch_forward_events_total{destination="soc"} 7.0' in text
    assert 'apiwatch_forward_failures_total{destination="soc"} 3.0' in text
    assert 'apiwatch_forward_position{destination="splunk"} 41.0' in text
