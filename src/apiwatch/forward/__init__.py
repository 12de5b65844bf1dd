"""SIEM forwarding: the ledger, read from a durable cursor per destination, sent in order.

See `worker` (the threads, retries and counters), `senders` (the wire formats), `cursor`
(`<data>/forward.sqlite3`) and `settings` (the `[[forward]]` config list).
"""

from apiwatch.forward.settings import Destination, parse_destinations
from apiwatch.forward.worker import Forwarder, failing_alert

__all__ = ["Destination", "Forwarder", "failing_alert", "parse_destinations"]
