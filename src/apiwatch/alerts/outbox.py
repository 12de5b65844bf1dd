"""The durable outbox: each (alert, channel) delivery is a row, delivered by a worker thread.

Rows are written in the transaction that stores the alert (`Repository.add`), so an alert is
never stored without its deliveries. One worker per channel sends its due rows in order; a
slow or dead receiver delays only its own channel. Delivery is at least once: a row is marked
delivered (committed with `synchronous=FULL`) right after the receiver accepted it, so after a
restart delivered rows are never sent again, and only a crash between the receiver's answer
and that commit can repeat one (receivers may drop repeats by the alert id they carry).

A failed attempt is retried after `base * 2**attempts` seconds, capped at `cap`. After
`threshold` consecutive failures a channel is reported failing (`on_failing`), once per
streak; the detection glue raises an alert about it on the other channels.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from apiwatch.alerts.channels import Channel, DeliveryError
from apiwatch.alerts.repository import Repository

log = logging.getLogger(__name__)

#: Called after every attempt with the channel name and whether it was delivered.
Observer = Callable[[str, bool], None]
#: Called when a channel reaches the failure threshold: (channel, failures, last error).
FailingHook = Callable[[str, int, str], None]
#: Longest sleep of an idle worker; a wake-up (`notify`) cuts it short.
_IDLE_SECONDS = 30.0


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next try after `attempts` failed ones (exponential, capped)."""
    return float(min(cap, base * 2 ** min(attempts, 32)))


class Outbox:
    """Worker threads delivering the outbox rows of each channel."""

    def __init__(
        self, repository: Repository, channels: list[Channel], *, base: float, cap: float,
        threshold: int, on_failing: FailingHook,
    ) -> None:
        self.repository = repository
        self.channels = {c.name: c for c in channels}
        self.base, self.cap, self.threshold = base, cap, threshold
        self.on_failing = on_failing
        self.observers: list[Observer] = []
        self._wake = {name: threading.Event() for name in self.channels}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start one worker per channel (undelivered rows from before a restart go first)."""
        for name in self.channels:
            thread = threading.Thread(target=self._run, args=(name,), daemon=True,
                                      name=f"apiwatch-outbox-{name}")
            thread.start()
            self._threads.append(thread)

    def notify(self) -> None:
        """New rows were written: wake every worker."""
        for event in self._wake.values():
            event.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers after their current attempt."""
        self._stopping.set()
        self.notify()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _run(self, name: str) -> None:
        failures = 0
        wake = self._wake[name]
        while not self._stopping.is_set():
            wake.clear()  # before reading: a row written from now on wakes the wait below
            try:
                failures = self._deliver_due(name, failures)
                due = self.repository.next_due(name)
            except Exception:
                # The worker must outlive a database hiccup; the row stays and is retried.
                log.exception("outbox worker %s failed", name)
                due = time.time() + self.base
            delay = _IDLE_SECONDS if due is None else min(max(due - time.time(), 0.0),
                                                          _IDLE_SECONDS)
            if delay > 0:
                wake.wait(delay)

    def _deliver_due(self, name: str, failures: int) -> int:
        channel = self.channels[name]
        for outbox_id, alert_id, attempts in self.repository.due(name, time.time()):
            if self._stopping.is_set():
                break
            alert = self.repository.get(alert_id)
            if alert is None:  # cannot happen: rows are written with their alert
                continue
            try:
                channel.send(alert)
            except DeliveryError as exc:
                failures += 1
                self.repository.failed(
                    outbox_id, time.time() + backoff(attempts, self.base, self.cap), str(exc))
                self._observe(name, ok=False)
                if failures == self.threshold:
                    self.on_failing(name, failures, str(exc))
                break  # the receiver is down: leave the rest of the queue for the retry
            self.repository.delivered(outbox_id)
            failures = 0
            self._observe(name, ok=True)
        return failures

    def _observe(self, name: str, *, ok: bool) -> None:
        for observer in self.observers:
            observer(name, ok)
