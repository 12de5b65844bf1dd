"""`apiwatch query`, `timeline` and `reindex`: the read side on the command line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from inputs_support import make_config, stored

from apiwatch.cli import main
from apiwatch.collector.runtime import Collector
from apiwatch.events import make_event

KEY = "ak_3f9a1c00d2e4b6a8"  # a fingerprint id, as capture writes it
HOUR = 3_600 * 10**9


def run(data: Path, *args: str) -> Result:
    """Run one apiwatch verb on `data`."""
    return CliRunner().invoke(main, [args[0], "--data", str(data), *args[1:]])


def lines(result: Result) -> list[dict[str, object]]:
    """The `{index, event}` objects of a --json run."""
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory with 30 failed logins from 10.0.0.x, an old event, and an API key's
    requests including the objects it read."""
    folder = tmp_path / "data"
    collector = Collector.open(make_config(folder))
    base = time.time_ns() - HOUR
    events = [
        make_event("authn_login_fail", {"source.ip": f"10.0.0.{n % 3}", "user.name": "root"},
                   timestamp_ns=base + n * 10**9)
        for n in range(30)
    ]
    events.append(make_event("authn_login_fail", {"source.ip": "10.0.0.1"},
                             timestamp_ns=base - 100 * HOUR))
    events += [
        make_event("data_access", {"apiwatch.api_key.id": KEY, "apiwatch.object.type": "invoice",
                                   "apiwatch.object.ids": ["inv-7", "inv-9"],
                                   "url.path": "/invoices"}, timestamp_ns=base + 40 * 10**9),
        make_event("authz_fail", {"apiwatch.api_key.id": KEY, "url.path": "/admin"},
                   timestamp_ns=base + 41 * 10**9),
    ]
    collector.pipeline.ingest("app", events)
    collector.close()
    return folder


def _reads(folder: Path) -> list[dict[str, object]]:
    collector = Collector.open(make_config(folder))
    try:
        return stored(collector, "event.action:data_access apiwatch.source:apiwatch")
    finally:
        collector.close()


class TestQuery:
    def test_filter_and_since(self, data: Path) -> None:
        """The filter language selects events; --since leaves out the older ones."""
        found = lines(run(data, "query", "source.ip:10.0.0.1 event.action:authn_login_fail",
                          "--json"))
        assert len(found) == 10
        assert all(f["event"]["source.ip"] == "10.0.0.1" for f in found)  # type: ignore[index]
        older = lines(run(data, "query", "source.ip:10.0.0.1", "--since", "7d", "--json"))
        assert len(older) == 11

    def test_cursor_pages_cover_everything_once(self, data: Path) -> None:
        """Paging with the printed cursor returns every match exactly once, newest first."""
        seen: list[int] = []
        cursor: list[str] = []
        while True:
            result = run(data, "query", "event.action:authn_login_fail", "--limit", "7",
                         "--json", *cursor)
            seen += [int(f["index"]) for f in lines(result)]  # type: ignore[call-overload]
            more = [ln for ln in result.stderr.splitlines() if ln.startswith("more: --cursor ")]
            if not more:
                break
            cursor = ["--cursor", more[0].split()[-1]]
        assert len(seen) == len(set(seen)) == 30

    def test_query_is_recorded_as_data_access(self, data: Path) -> None:
        """Each query leaves a `data_access` event naming the filter and how much it returned."""
        lines(run(data, "query", "user.name:root", "--limit", "5", "--json"))
        (read,) = _reads(data)
        assert read["labels.query"] == "user.name:root"
        assert read["apiwatch.object.count"] == 5

    def test_bad_filter_is_a_usage_error(self, data: Path) -> None:
        """A filter that does not parse exits 2 with the reason, and reads nothing."""
        result = run(data, "query", "source.ip:(")
        assert result.exit_code == 2
        assert "bad filter" in result.stderr
        assert _reads(data) == []

    def test_table_output(self, data: Path) -> None:
        """Without --json the events are a table with their ledger index and actor."""
        result = run(data, "query", "event.action:authz_fail")
        assert result.exit_code == 0, result.output
        assert KEY in result.stdout
        assert "/admin" in result.stdout


class TestTimeline:
    def test_key_timeline_shows_objects_read(self, data: Path) -> None:
        """The timeline of an API key lists its requests and the objects it read."""
        result = run(data, "timeline", "--key", KEY)
        assert result.exit_code == 0, result.output
        assert "invoice:inv-7,inv-9" in result.stdout
        assert "objects read: invoice:inv-7,inv-9 (1x)" in result.stdout
        found = lines(run(data, "timeline", "--key", KEY, "--json", "--order", "oldest"))
        actions = [f["event"]["event.action"] for f in found]  # type: ignore[index]
        assert actions == ["data_access", "authz_fail"]

    def test_timeline_is_recorded(self, data: Path) -> None:
        """A timeline is itself a `data_access` event naming the actor followed."""
        lines(run(data, "timeline", "--ip", "10.0.0.2", "--json"))
        (read,) = _reads(data)
        assert read["labels.actor"] == "ip:10.0.0.2"
        assert read["apiwatch.object.count"] == 10

    def test_exactly_one_actor(self, data: Path) -> None:
        """Naming no actor, or two, is a usage error."""
        assert run(data, "timeline").exit_code == 2
        assert run(data, "timeline", "--ip", "10.0.0.1", "--user", "root").exit_code == 2


class TestReindex:
    def test_rebuilds_the_store_from_the_ledger(self, data: Path) -> None:
        """After the index is deleted, reindex restores every event from the ledger."""
        before = lines(run(data, "query", "", "--since", "30d", "--json", "--limit", "1000"))
        for path in data.glob("index.sqlite3*"):
            path.unlink()
        result = run(data, "reindex")
        assert result.exit_code == 0, result.output
        assert "reindexed" in result.stdout
        after = lines(run(data, "query", "", "--since", "30d", "--json", "--limit", "1000"))
        # The first query's own record is in the ledger, so it is back too.
        assert {f["index"] for f in before} < {f["index"] for f in after}
        assert len(after) == len(before) + 1

    def test_refuses_while_a_collector_runs(self, data: Path) -> None:
        """Reindexing a data directory a collector holds is refused (exit 2)."""
        collector = Collector.open(make_config(data))
        try:
            result = run(data, "reindex")
        finally:
            collector.close()
        assert result.exit_code == 2
        assert "open in another process" in result.stderr
