"""The shipper: sends spooled segments to the collector, in order, until each is acknowledged.

A segment is deleted only after the collector answered 200. Transient failures (connection
refused, 5xx, a stale timestamp) are retried with exponential backoff and full jitter; 429 waits
for Retry-After; a replay refusal is re-signed and sent again at once. A segment the collector
refuses for good (400 bad lines, 413 too large) is moved aside to `rejected/` and counted, never
deleted. Every attempt is re-signed, and the collector's idempotency on (source, apiwatch.seq)
makes a retry after a lost acknowledgement add nothing.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx

from apiwatch.capture.spool import Spool
from apiwatch.signing import sign_batch

log = logging.getLogger("apiwatch.capture")

PERMANENT_REFUSALS = frozenset({400, 413})


@dataclass
class ShipperStats:
    """What the shipper did; exposed to the app for its own metrics."""

    batches_sent: int = 0
    events_sent: int = 0
    duplicates: int = 0
    retries: int = 0
    quarantined: int = 0
    last_error: str = ""


class Shipper:
    """One background thread sending `spool`'s ready segments to `url` (`.../v1/events`)."""

    def __init__(
        self,
        spool: Spool,
        url: str,
        token: str,
        *,
        linger: float = 1.0,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.spool = spool
        self.url = url
        self.token = token
        self.linger = linger
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.stats = ShipperStats()
        self._client = client or httpx.Client(timeout=timeout)
        self._stop = threading.Event()
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name="apiwatch-shipper", daemon=True)

    def start(self) -> None:
        """Start shipping in the background."""
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready = self.spool.ready()
            if not ready:
                self.spool.roll()
                ready = self.spool.ready()
            if not ready:
                self._stop.wait(self.linger)
                continue
            for segment in ready:
                delay = self.ship(segment)
                if delay is not None:
                    self._stop.wait(delay)
                    break

    def ship(self, segment: Path) -> float | None:
        """Send one segment; None when it is settled, else seconds to wait before trying again."""
        body = segment.read_bytes()
        try:
            response = self._client.post(
                self.url,
                content=body,
                headers={"Content-Type": "application/x-ndjson", **sign_batch(self.token, body)},
            )
        except httpx.HTTPError as exc:
            return self._retry_later(f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if status == 200:
            answer = response.json()
            self.spool.acknowledge(segment)
            self.stats.batches_sent += 1
            self.stats.events_sent += int(answer.get("accepted", 0))
            self.stats.duplicates += int(answer.get("duplicates", 0))
            self._failures = 0
            return None
        if status == 409:  # replay refusal: our previous signature was seen; sign afresh
            self.stats.retries += 1
            return 0.0
        if status == 429:
            self.stats.retries += 1
            return _retry_after(response.headers.get("Retry-After"), self.backoff_base)
        if status in PERMANENT_REFUSALS:
            target = self.spool.quarantine(segment)
            self.stats.quarantined += 1
            self.stats.last_error = f"HTTP {status}: {response.text[:200]}"
            log.error("apiwatch: collector refused %s for good (%s); kept in %s",
                      segment.name, self.stats.last_error, target)
            return None
        return self._retry_later(f"HTTP {status}")

    def _retry_later(self, reason: str) -> float:
        self._failures += 1
        self.stats.retries += 1
        self.stats.last_error = reason
        cap = min(self.backoff_max, self.backoff_base * 2 ** min(self._failures, 30))
        return random.uniform(0, cap)  # noqa: S311 - jitter, not a secret

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current request; unsent segments stay in the spool for next time."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._client.close()


def _retry_after(value: str | None, default: float) -> float:
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default
