"""The forwarder: one worker thread per destination, reading the ledger from its cursor.

Records go in ledger order (so in each source's order), a batch at a time; the cursor moves
only after the destination accepted the batch (`apiwatch.forward.cursor`). A failed batch is
sent again after `retry_base_seconds * 2**failures`, capped at `retry_max_seconds`, and
nothing after it goes first. After `failure_threshold` consecutive failures the destination
is reported failing (`on_failing`, once per streak); the collector raises an
`alert_channel_failing` alert from it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from apiwatch.alerts.channels import DeliveryError
from apiwatch.alerts.detection import CHANNEL_RULE
from apiwatch.alerts.outbox import backoff
from apiwatch.detect import Alert
from apiwatch.forward.cursor import FILE_NAME, Cursors
from apiwatch.forward.senders import Sender, build_sender
from apiwatch.forward.settings import Destination
from apiwatch.ledger.log import Ledger

log = logging.getLogger(__name__)

#: Called when a destination reaches its failure threshold: (name, failures, last error).
FailingHook = Callable[[str, int, str], object]


def failing_alert(name: str, failures: int, error: str) -> Alert:
    """The `alert_channel_failing` alert of a forwarding destination that keeps failing."""
    now = time.time()
    return Alert(
        rule=CHANNEL_RULE, title="A SIEM forwarding destination keeps failing", severity="high",
        group={"apiwatch.channel": f"forward:{name}"}, first_seen=now, last_seen=now,
        count=failures, reason=f"{failures} batches in a row failed; last: {error}",
    )


class Forwarder:
    """Forwards the ledger to every configured destination; see the module docstring."""

    def __init__(self, destinations: Sequence[Destination], ledger: Ledger, data_dir: Path,
                 on_failing: FailingHook) -> None:
        self.destinations = {d.name: d for d in destinations}
        self.ledger = ledger
        self.data_dir = data_dir
        self.on_failing = on_failing
        #: Per destination: events accepted, failed attempts, and the next index to send.
        self.sent = dict.fromkeys(self.destinations, 0)
        self.failures = dict.fromkeys(self.destinations, 0)
        self.positions = dict.fromkeys(self.destinations, 0)
        self._senders: dict[str, Sender] = {}
        self._cursors: Cursors | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def rejected(self, name: str) -> int:
        """Events `name` refused for good (counted, not retried)."""
        sender = self._senders.get(name)
        return sender.rejected if sender else 0

    def start(self) -> None:
        """Open the cursors and start one worker per destination (nothing without any)."""
        if not self.destinations:
            return
        self._cursors = Cursors(self.data_dir / FILE_NAME)
        for name, destination in self.destinations.items():
            self._senders[name] = build_sender(destination)
            self.positions[name] = self._cursors.get(name)
            thread = threading.Thread(target=self._run, args=(name,), daemon=True,
                                      name=f"apiwatch-forward-{name}")
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the workers after the batch in flight, then close senders and cursors."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        for sender in self._senders.values():
            sender.close()
        if self._cursors is not None:
            self._cursors.close()
            self._cursors = None

    def _run(self, name: str) -> None:
        d = self.destinations[name]
        streak = 0
        while not self._stopping.is_set():
            try:
                moved = self._send_next(name)
            except Exception as exc:
                streak += 1
                self.failures[name] += 1
                if isinstance(exc, DeliveryError):
                    log.warning("forward %s: %s (attempt %d)", name, exc, streak)
                else:  # a bad record or a disk hiccup: the worker outlives it and retries
                    log.exception("forward %s failed", name)
                if streak == d.failure_threshold:
                    self._report_failing(name, streak, str(exc))
                self._stopping.wait(backoff(streak - 1, d.retry_base_seconds,
                                            d.retry_max_seconds))
                continue
            streak = 0
            if not moved:
                self._stopping.wait(d.poll_seconds)

    def _send_next(self, name: str) -> bool:
        """Send the next batch, if any; whether there was one."""
        start = self.positions[name]
        stop = min(self.ledger.size, start + self.destinations[name].batch_size)
        if stop <= start:
            return False
        events = [orjson.loads(record) for record in self.ledger.read_range(start, stop)]
        self._senders[name].send(events)
        assert self._cursors is not None  # set by start
        self._cursors.set(name, stop)
        self.positions[name] = stop
        self.sent[name] += len(events)
        return True

    def _report_failing(self, name: str, failures: int, error: str) -> None:
        try:
            self.on_failing(name, failures, error)
        except Exception:  # the alert is a courtesy; forwarding goes on regardless
            log.exception("forward %s: cannot raise the failing alert", name)
