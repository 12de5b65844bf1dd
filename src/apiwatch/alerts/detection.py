"""The glue from ingest to people: engine on the pipeline, alerts stored, recorded, delivered.

Ingest path: `listener` (a `Pipeline` listener) runs the engine over each stored batch, in
memory only, and queues the alerts it raised. A raiser thread takes them off the queue and,
per alert (never per event): skips it if the repository already holds an alert of the same
rule and group whose suppression window covers it (a replay after a restart re-raises
episodes it cannot know were raised), else stores it with its outbox rows, wakes the outbox
and writes the alert to the ledger as an `alert_raised` event.

After a restart `rebuild` replays the ledger's recent window (the longest rule window,
capped by `replay_seconds`) through the engine, so windows that an attack had half filled
before a crash fill up again; alerts raised by the replay go through the same dedup.

`tick` (periodic) runs the engine's time-driven rules and copies the counts of repeats that
the engine folded into open alerts (`suppressed`) to their rows.

Rules switched off by an admin (`set_rule_enabled`, kept in `switches.RuleSwitches`) are off
from construction on, so a restart's replay does not raise them either.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from apiwatch.alerts.channels import Channel, alert_event, build_channel
from apiwatch.alerts.outbox import Outbox
from apiwatch.alerts.repository import FILE_NAME, Repository, slot_of
from apiwatch.alerts.settings import AlertsConfig
from apiwatch.alerts.switches import FILE_NAME as SWITCHES_FILE
from apiwatch.alerts.switches import RuleSwitches
from apiwatch.detect import SEVERITIES, Alert, Engine, load_catalogue
from apiwatch.detect.sigma_load import load_any
from apiwatch.events import Event, parse_timestamp

if TYPE_CHECKING:
    from apiwatch.collector.pipeline import Pipeline

log = logging.getLogger(__name__)

#: The rule id of the alert a failing channel raises, and its suppression window.
CHANNEL_RULE = "alert_channel_failing"
CHANNEL_SUPPRESS = 3600.0
_REPLAY_CHUNK = 1000
_STOP = None
_RAISE_BATCH = 256  # queued alerts stored together at most


class Detection:
    """Detection and alerting of one collector; see the module docstring."""

    def __init__(self, pipeline: Pipeline, settings: AlertsConfig, data_dir: Path) -> None:
        rules = [*(load_catalogue() if settings.catalogue else []), *load_any(*settings.rules)]
        self.pipeline = pipeline
        self.settings = settings
        self.engine = Engine(rules, lateness=settings.lateness_seconds)
        self.switches = RuleSwitches(data_dir / SWITCHES_FILE)
        self.engine.set_disabled(self.switches.disabled())
        self._suppress = {rule.key: rule.suppress for rule in rules}
        horizons = [max(rule.window.horizon, 0.0) for rule in rules]
        self.replay_seconds = min(settings.replay_seconds, max(horizons, default=0.0))
        self.repository = Repository(data_dir / FILE_NAME)
        self.channels: list[Channel] = [build_channel(c) for c in settings.channels]
        self.outbox = Outbox(
            self.repository, self.channels, base=settings.retry_base_seconds,
            cap=settings.retry_max_seconds, threshold=settings.failure_threshold,
            on_failing=self._channel_failing,
        )
        self._lock = threading.Lock()  # the engine: ingest threads and the tick
        self._queue: queue.SimpleQueue[tuple[Alert, str | None] | None] = queue.SimpleQueue()
        self._raiser: threading.Thread | None = None
        self._synced: dict[str, tuple[int, int]] = {}

    # --- the ingest path -----------------------------------------------------------------

    def listener(self, first: int, batch: Sequence[Event]) -> None:
        """The pipeline listener: the engine over a stored batch (ledger indexes from
        `first`); new alerts are queued."""
        with self._lock:
            alerts = self.engine.process_batch(batch)
        for alert in alerts:
            self._queue.put((alert, None))

    def start(self) -> None:
        """Start the raiser thread and the outbox workers."""
        self._raiser = threading.Thread(target=self._raise_loop, daemon=True,
                                        name="apiwatch-alerts")
        self._raiser.start()
        self.outbox.start()

    def _raise_loop(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            items: list[tuple[Alert, str | None]] = []
            # An attack raises alerts in bursts: store the queued ones together.
            while item is not _STOP and len(items) < _RAISE_BATCH:
                items.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            stopping = item is _STOP
            if not items:
                continue
            try:
                self.raise_alerts(items)
            except Exception:
                # A burst that cannot be stored must not stop the next; replay retries it.
                log.exception("cannot store %d alerts (first: rule %s)", len(items),
                              items[0][0].rule)

    def raise_alert(self, alert: Alert, *, exclude: str | None = None) -> bool:
        """Store, deliver and record `alert` unless its episode is already stored (then the
        engine's alert takes the stored id, so its repeats fold into that row); whether it
        was new. `exclude` names a channel not to send it to."""
        return bool(self.raise_alerts([(alert, exclude)]))

    def raise_alerts(self, items: Sequence[tuple[Alert, str | None]]) -> list[Alert]:
        """`raise_alert` for several (alert, excluded channel) pairs, stored in one transaction
        and recorded in one ledger append; the alerts that were new."""
        new: list[tuple[Alert, str, float, list[str]]] = []
        episodes: dict[str, tuple[Alert, float]] = {}  # slots opened by this call
        for alert, exclude in items:
            key = alert.rule if alert.tenant is None else f"{alert.rule}@{alert.tenant}"
            slot = slot_of(key, alert.group)
            opened = episodes.get(slot)
            if opened is not None and alert.last_seen < opened[1]:
                alert.id, alert.status = opened[0].id, opened[0].status
                continue
            known = self.repository.find_slot(slot, alert.last_seen)
            if known is not None:
                alert.id, alert.status = known
                continue
            rank = SEVERITIES.index(alert.severity) if alert.severity in SEVERITIES else 0
            targets = [c.name for c in self.channels
                       if c.name != exclude and rank >= SEVERITIES.index(c.min_severity)]
            until = alert.first_seen + self._suppress.get(key, CHANNEL_SUPPRESS)
            new.append((alert, slot, until, targets))
            episodes[slot] = (alert, until)
        if not new:
            return []
        self.repository.add_many(new)
        stored = [self.repository.get(alert.id) for alert, _, _, _ in new]
        # In the ledger before anyone is told: a delivered alert always has its record (the
        # outbox rows are durable, so a crash in between still delivers them after a restart).
        self.pipeline.record_batch([alert_event(row) for row in stored if row is not None])
        self.outbox.notify()
        return [alert for alert, _, _, _ in new]

    def _channel_failing(self, channel: str, failures: int, error: str) -> None:
        now = time.time()
        self._queue.put((Alert(
            rule=CHANNEL_RULE, title="An alert channel keeps failing", severity="high",
            group={"apiwatch.channel": channel}, first_seen=now, last_seen=now,
            count=failures, reason=f"{failures} deliveries in a row failed; last: {error}",
        ), channel))

    # --- restart and upkeep ----------------------------------------------------------------

    def rebuild(self, now: float | None = None) -> int:
        """Replay the ledger's recent window through the engine (before `start`); the number
        of records replayed."""
        ledger = self.pipeline.ledger
        size = ledger.size
        start = max(self._first_ingested_after((time.time() if now is None else now)
                                               - self.replay_seconds),
                    size - self.settings.replay_max_records)
        for first in range(start, size, _REPLAY_CHUNK):
            events = [orjson.loads(ledger.read(i))
                      for i in range(first, min(first + _REPLAY_CHUNK, size))]
            with self._lock:
                alerts = self.engine.process_batch(events)
            for alert in alerts:
                self.raise_alert(alert)
        return size - start

    def _first_ingested_after(self, cutoff: float) -> int:
        """The first ledger index received at or after `cutoff` (binary search: the ledger
        is in order of receipt)."""
        ledger = self.pipeline.ledger
        low, high = 0, ledger.size
        while low < high:
            mid = (low + high) // 2
            stamp = orjson.loads(ledger.read(mid)).get("event.ingested")
            if isinstance(stamp, str) and parse_timestamp(stamp).timestamp() >= cutoff:
                high = mid
            else:
                low = mid + 1
        return low

    def tick(self, now: float | None = None) -> None:
        """Run time-driven rules at `now`; copy folded repeats to the repository."""
        with self._lock:
            raised = self.engine.advance(time.time() if now is None else now)
            open_alerts = self.engine.open_alerts()
        for alert in raised:
            self._queue.put((alert, None))
        synced: dict[str, tuple[int, int]] = {}
        for alert in open_alerts:
            state = (alert.count, alert.suppressed)
            if self._synced.get(alert.id) != state:
                self.repository.merge(alert)
            synced[alert.id] = state
        self._synced = synced

    def set_rule_enabled(self, rule_id: str, enabled: bool, actor: str) -> bool:
        """Switch a loaded rule on or off, kept across restarts and applied to the running
        engine at once; whether that changed anything. KeyError for an unknown rule id."""
        if rule_id not in {rule.id for rule in self.engine.rules}:
            raise KeyError(rule_id)
        changed = self.switches.set(rule_id, enabled, actor)
        with self._lock:
            self.engine.set_disabled(self.switches.disabled())
        return changed

    def close(self) -> None:
        """Store what is queued, sync counts, stop the workers, close the databases."""
        if self._raiser is not None:
            self._queue.put(_STOP)
            self._raiser.join(30)
        with self._lock:
            open_alerts = self.engine.open_alerts()
        for alert in open_alerts:
            self.repository.merge(alert)
        self.outbox.stop()
        self.repository.close()
        self.switches.close()
