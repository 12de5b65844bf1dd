"""A failing index store over real HTTP: the batch is refused with a defined answer, and the
client's retry is acknowledged once the store has it, every event stored exactly once."""

from __future__ import annotations

import time
from pathlib import Path

from collector_harness import client, launch, ndjson, post, query, shut

from store_trouble import StorageTrouble


def test_a_failing_index_store_answers_503_and_takes_the_retry_once_it_works(
    tmp_path: Path,
) -> None:
    """The real SQLite store refuses inserts (a trigger, as a failing disk would): 503
    `store_unavailable` with Retry-After, counted; once it works again the retry, re-signed, is
    acknowledged as duplicates (the batch is in the ledger) and is queryable at once, with the
    refusal's own event."""
    collector = launch(tmp_path, ["api"])
    trouble = StorageTrouble(collector.data / "index.sqlite3")
    try:
        with client(collector.url) as http:
            stamp = int(time.time())  # each attempt signed anew, as a client's retry is
            assert post(http, "api", ndjson(range(1, 51)), timestamp=stamp).status_code == 200
            trouble.switch(on=True)
            refused = post(http, "api", ndjson(range(51, 101)), timestamp=stamp + 1)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "store_unavailable"
            assert refused.headers["Retry-After"] == "1"
            assert (
                'apiwatch_ingest_refused_total{reason="store_unavailable",source="api"} 1.0'
                in http.get("/metrics").text
            )
            trouble.switch(on=False)
            retry = post(http, "api", ndjson(range(51, 101)), timestamp=stamp + 2)
            assert retry.json() == {"accepted": 0, "duplicates": 50}
            seqs = [event["apiwatch.seq"] for event in query(http, "apiwatch.source:api")]
            assert sorted(seqs) == list(range(1, 101))
            # The refusal is an event of its own, written while the store failed: in it too.
            refusals = query(http, "event.action:ingest_refused")
            assert [event.get("event.reason") for event in refusals] == ["store_unavailable"]
        assert collector.stop() == 0
    finally:
        trouble.close()
        shut(collector)
