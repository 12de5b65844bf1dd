"""The collector's Prometheus metrics, in a registry of its own (never the global one).

Counters move on the request path; the gauges that describe stored state (ledger size, store
lag, checkpoint age) are read when /metrics is scraped. Label values are bounded: a source
label is a configured source name or "" (unknown token), a reason is one of the fixed codes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """Every metric /metrics shows."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "apiwatch_events_received", "Events in authenticated batches, before checks.",
            ["source"], registry=r,
        )
        self.accepted = Counter(
            "apiwatch_events_accepted", "Events appended to the ledger.", ["source"], registry=r
        )
        self.duplicates = Counter(
            "apiwatch_events_duplicate", "Events already held (a retried batch).", ["source"],
            registry=r,
        )
        self.rejected_lines = Counter(
            "apiwatch_events_rejected", "Malformed lines refused.", ["source"], registry=r
        )
        self.refused = Counter(
            "apiwatch_ingest_refused", "Requests refused, by claimed source and reason.",
            ["source", "reason"], registry=r,
        )
        self.refusals_suppressed = Counter(
            "apiwatch_refusal_events_suppressed",
            "Refusals not written as events because a peer exceeded its budget.", registry=r,
        )
        self.reads = Counter(
            "apiwatch_reads", "Authenticated read requests, by endpoint.", ["endpoint"],
            registry=r,
        )
        self.in_flight = Gauge(
            "apiwatch_ingest_in_flight", "Batches being received or stored now.", registry=r
        )
        self.ledger_size = Gauge("apiwatch_ledger_size", "Records in the ledger.", registry=r)
        self.checkpoint_age = Gauge(
            "apiwatch_checkpoint_age_seconds", "Seconds since the newest signed checkpoint.",
            registry=r,
        )
        self.alert_deliveries = Counter(
            "apiwatch_alert_deliveries", "Alerts delivered, by channel.", ["channel"],
            registry=r,
        )
        self.alert_delivery_failures = Counter(
            "apiwatch_alert_delivery_failures", "Failed alert delivery attempts, by channel.",
            ["channel"], registry=r,
        )
        self.store_lag = Gauge(
            "apiwatch_store_lag", "Ledger records not yet in the index store.", registry=r
        )

    def watch_forwarding(self, forwarding: Forwarding) -> None:
        """Expose the SIEM forwarder's per-destination counts, read at each scrape."""
        self.registry.register(_ForwardingCollector(forwarding))

    def watch_syslog(self, source: str, stats: DataclassInstance) -> None:
        """Expose the syslog receiver's counters (`ReceiverStats`, storing under `source`),
        read at each scrape: `apiwatch_syslog_<counter>_total{source=...}`, each field's
        `help` metadata its description."""
        self.registry.register(_CountersCollector("apiwatch_syslog", source, stats))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class Forwarding(Protocol):
    """What /metrics reads of `apiwatch.forward.Forwarder` (kept structural: no import cycle)."""

    @property
    def sent(self) -> Mapping[str, int]:
        """Events accepted, by destination."""

    @property
    def failures(self) -> Mapping[str, int]:
        """Failed attempts, by destination."""

    @property
    def positions(self) -> Mapping[str, int]:
        """The next ledger index to send, by destination."""


class _ForwardingCollector(Collector):
    def __init__(self, forwarding: Forwarding) -> None:
        self.forwarding = forwarding

    def collect(self) -> Iterator[Metric]:
        f = self.forwarding
        sent = CounterMetricFamily(
            "apiwatch_forward_events", "Events a SIEM destination accepted.", labels=["destination"]
        )
        failed = CounterMetricFamily(
            "apiwatch_forward_failures", "Failed delivery attempts, by destination.",
            labels=["destination"],
        )
        position = GaugeMetricFamily(
            "apiwatch_forward_position", "The next ledger index to send, by destination.",
            labels=["destination"],
        )
        for name in sorted(f.sent):
            sent.add_metric([name], f.sent[name])
            failed.add_metric([name], f.failures.get(name, 0))
            position.add_metric([name], f.positions.get(name, 0))
        yield from (sent, failed, position)


class _CountersCollector(Collector):
    """The int fields of a dataclass of counters, one counter family each, labelled by the
    source the counted input stores under."""

    def __init__(self, prefix: str, source: str, counters: DataclassInstance) -> None:
        self.prefix = prefix
        self.source = source
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        for spec in dataclasses.fields(self.counters):
            family = CounterMetricFamily(
                f"{self.prefix}_{spec.name}", spec.metadata["help"], labels=["source"]
            )
            family.add_metric([self.source], getattr(self.counters, spec.name))
            yield family
