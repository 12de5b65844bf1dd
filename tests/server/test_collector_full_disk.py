"""`apiwatch serve` on a disk that fills up (a real tmpfs): batches are refused with 507 and
nothing is half-stored; once there is room the same batch is taken."""

from __future__ import annotations

import time
from typing import Any

from collector_harness import client, launch, ndjson, post, shut


def test_full_disk_refuses_with_507_then_recovers(small_disk: Any) -> None:
    """507 storage_full with Retry-After while the disk is full, counted in /metrics; after
    space returns the retried batch is accepted whole, and the collector stops cleanly."""
    collector = launch(small_disk.path, ["app"])
    try:
        with client(collector.url) as http:
            assert post(http, "app", ndjson([1, 2])).json() == {"accepted": 2, "duplicates": 0}
            filler = small_disk.fill()
            body = ndjson(range(3, 40), **{"labels.note": "x" * 2000})
            refused = post(http, "app", body)
            assert refused.status_code == 507
            assert refused.json()["error"] == "storage_full"
            assert refused.headers["Retry-After"] == "30"
            metrics = http.get("/metrics").text
            assert 'apiwatch_ingest_refused_total{reason="storage_full",source="app"} 1.0' in (
                metrics
            )
            filler.unlink()
            retry_stamp = int(time.time()) + 1  # signed anew: not a replay of the refused one
            retried = post(http, "app", body, timestamp=retry_stamp)
            assert retried.json() == {"accepted": 37, "duplicates": 0}
        assert collector.stop() == 0
    finally:
        shut(collector)
