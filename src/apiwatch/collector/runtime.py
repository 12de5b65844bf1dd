"""The collector's data directory at run time: open it, tick it, close it cleanly.

```
<data>/ledger/          the ledger (`apiwatch.ledger`), created on first run with a fresh key
<data>/index.sqlite3    the index store (unless `[store] url` names another)
<data>/sources.json     the sources' sequence state (`Pipeline.snapshot`)
<data>/indexer.lock     held by whoever writes the index store (`apiwatch.collector.indexer`)
<data>/alerts.sqlite3   alerts, their history and the delivery outbox (`apiwatch.alerts`)
<data>/forward.sqlite3  the SIEM forwarding cursors (`apiwatch.forward`)
```

The ledger locks its directory, so a second collector on the same data fails to open.

Opening recovers: the ledger repairs a torn tail, then `Pipeline.recover` replays whatever the
store and the sequence state miss. Closing signs a checkpoint over everything appended, writes
the snapshot and closes the files; after a kill -9 the next `open` does the same work.
Detection (`apiwatch.alerts.Detection`) is rebuilt on open by replaying the ledger's recent
window, then listens to the pipeline; the tick runs its time-driven rules.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import replace

from apiwatch.alerts import AlertsConfig, Detection
from apiwatch.collector.indexer import writer_lock
from apiwatch.collector.pipeline import Pipeline
from apiwatch.config import Config
from apiwatch.enrich import open_enricher
from apiwatch.errors import ApiwatchError, ConfigError
from apiwatch.forward import Forwarder, failing_alert, parse_destinations
from apiwatch.ledger.layout import LEDGER_FILE, LedgerSettings
from apiwatch.ledger.log import Ledger
from apiwatch.monitor.probes import ProbeScheduler, parse_probes
from apiwatch.sanitize import SanitizeConfig, Sanitizer
from apiwatch.store import Store, open_store

LEDGER_DIR = "ledger"
INDEXER_LOCK = "indexer.lock"
_DURABILITY = {"durable": True, "none": False}


class CollectorError(ApiwatchError):
    """The data directory cannot be opened for collecting (in use, unreadable)."""


def default_origin() -> str:
    """The checkpoint origin of a ledger whose config names none: `apiwatch/<hostname>`."""
    return f"apiwatch/{socket.gethostname()}"


def open_ledger(config: Config) -> Ledger:
    """Open the data directory's ledger, creating it (and its signing key) on first use."""
    directory = config.data_dir / LEDGER_DIR
    settings = config.ledger
    if settings.durability not in _DURABILITY:
        raise ConfigError(
            f"ledger.durability: {settings.durability!r} is not one of {sorted(_DURABILITY)}"
        )
    # The config's policies apply to an existing ledger too; only the origin is fixed.
    policies = {
        "roll_size": settings.segment_bytes,
        "durable": _DURABILITY[settings.durability],
        "checkpoint_records": settings.checkpoint_every_records,
        "checkpoint_seconds": settings.checkpoint_every_seconds,
    }
    if not (directory / LEDGER_FILE).exists():
        return Ledger.create(
            directory, settings.origin or default_origin(), settings.key_name, **policies
        )
    stored = LedgerSettings.load(directory).origin
    if settings.origin and settings.origin != stored:
        raise ConfigError(
            f"ledger.origin: {settings.origin!r}, but the ledger in {directory} was created "
            f"as {stored!r}; an origin names every checkpoint and cannot change"
        )
    return Ledger.open(directory, **policies)


class Collector:
    """An open data directory: ledger, index store and the pipeline over them."""

    def __init__(self, config: Config, ledger: Ledger, store: Store) -> None:
        self.config = config
        self.ledger = ledger
        self.store = store
        sanitizer = Sanitizer(SanitizeConfig.from_mapping(config.sanitize))
        tenants = {name: s.tenant for name, s in config.sources.items() if s.tenant}
        self.pipeline = Pipeline(ledger, store, sanitizer, config.data_dir, tenants)
        self.pipeline.enrich = open_enricher(config.enrich.asn_db, config.enrich.geo_db)
        #: Ledger records `open` replayed into the store or the sequence state.
        self.replayed = 0
        self.detection = Detection(
            self.pipeline, AlertsConfig.from_mapping(config.alerts), config.data_dir
        )
        #: The `[[probes]]` checks; they run while detection does (`open(detect=True)`).
        self.probes = ProbeScheduler(parse_probes(config.probes), self.pipeline.record)
        #: The `[[forward]]` SIEM destinations; they run while detection does, too.
        self.forwarder = Forwarder(
            parse_destinations(config.forward), ledger, config.data_dir,
            lambda *failing: self.detection.raise_alert(failing_alert(*failing)))

    @classmethod
    def open(
        cls, config: Config, progress: Callable[[int, int], None] | None = None,
        *, detect: bool = False,
    ) -> Collector:
        """Open the data directory (created if absent), then bring the store up to the ledger.

        With `detect`, detection runs on what is ingested (rebuilt first from the ledger) and
        alerts are delivered; without it, alerts can still be read and acknowledged.
        """
        # Absolute, so that the default SQLite URL (`sqlite:///<data>/...`) names this folder.
        config = replace(config, data_dir=config.data_dir.absolute())
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(config.data_dir, 0o700)  # keys and logs of security events live here
        except OSError as exc:
            raise CollectorError(f"cannot use {config.data_dir}: {exc.strerror}") from None
        ledger = open_ledger(config)
        store: Store | None = None
        collector: Collector | None = None
        try:
            store = open_store(config.store_url)
            collector = cls(config, ledger, store)
            lock_path = config.data_dir / INDEXER_LOCK
            with writer_lock(lock_path):
                collector.replayed = collector.pipeline.recover(progress)
            if config.store.index_process:
                collector.pipeline.index_in_process(config.store_url, lock_path)
            if detect:
                collector.detection.rebuild()
        except BaseException:
            if collector is not None:
                collector.detection.close()
                collector.pipeline.close()
            if store is not None:
                store.close()
            ledger.close()
            raise
        if detect:
            collector.pipeline.listeners.append(collector.detection.listener)
            collector.detection.start()
            collector.probes.start()
            collector.forwarder.start()
        return collector

    def tick(self) -> None:
        """Periodic upkeep: time-driven rules, a checkpoint when the ledger's policy says so,
        the snapshot."""
        self.detection.tick()
        self.ledger.maybe_checkpoint()
        self.pipeline.snapshot()

    def close(self) -> None:
        """Sign a final checkpoint, write the snapshot and close every file."""
        self.probes.stop()  # first: a probe in flight still records its result
        self.forwarder.stop()  # before detection: a failing destination raises an alert
        self.detection.close()  # then: it may still record queued alerts in the ledger
        if self.ledger.size:
            # Ed25519 is deterministic: re-signing an unchanged tree rewrites the same note.
            self.ledger.checkpoint()
        self.pipeline.close()  # the indexer commits what it holds
        self.pipeline.snapshot()
        self.ledger.close()
        self.store.close()
