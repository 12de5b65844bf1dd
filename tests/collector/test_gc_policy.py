"""The collector's garbage-collector settings apply while it runs and are undone after."""

from __future__ import annotations

import gc

from apiwatch.collector.gc_policy import YOUNG_THRESHOLD, collector_gc


def test_settings_apply_within_and_are_restored() -> None:
    """Inside: what was alive is frozen and young collections are rare; outside: as before
    (`apiwatch ingest` runs inside a caller's process in tests and in embedding programs)."""
    before = gc.get_threshold()
    with collector_gc():
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
