"""Alerts: stored with their lifecycle, written to the ledger, delivered through an outbox.

`Detection` wires the engine (`apiwatch.detect`) to the collector's pipeline; `Repository`
keeps alerts, their history and the outbox in `<data>/alerts.sqlite3`; `Outbox` delivers to
the channels (webhook, Slack, email, syslog/CEF).
"""

from apiwatch.alerts.channels import Channel, DeliveryError, alert_event, build_channel
from apiwatch.alerts.detection import Detection
from apiwatch.alerts.lifecycle import STATUSES, LifecycleError, Transition
from apiwatch.alerts.outbox import Outbox, backoff
from apiwatch.alerts.repository import FILE_NAME, Repository
from apiwatch.alerts.settings import AlertsConfig, ChannelConfig

__all__ = [
    "FILE_NAME",
    "STATUSES",
    "AlertsConfig",
    "Channel",
    "ChannelConfig",
    "DeliveryError",
    "Detection",
    "LifecycleError",
    "Outbox",
    "Repository",
    "Transition",
    "alert_event",
    "backoff",
    "build_channel",
]
