"""Helpers of the input tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from apiwatch.collector.runtime import Collector
from apiwatch.config import Config, load_config
from apiwatch.store import Query


def make_config(data_dir: Path) -> Config:
    """A default config on `data_dir`, without fsync (tests do not need durability)."""
    config = load_config(None, env={})
    config.data_dir = data_dir
    config.ledger.durability = "none"
    return config


def stored(collector: Collector, text: str, limit: int = 1000) -> list[dict[str, object]]:
    """The events matching filter `text`, oldest first."""
    page = collector.store.query(Query.parse(text, order="oldest", limit=limit))
    return [s.event for s in page.events]


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll `condition` until it holds; fail the test if it does not within `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)
