"""`apiwatch export --query`: the events one key produced, with proofs, beside a live collector."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner
from inputs_support import make_config

from apiwatch.cli import main
from apiwatch.collector.runtime import Collector
from apiwatch.events import make_event

KEY = "ak_0123456789abcdef"
OTHER = "ak_fedcba9876543210"


def test_export_by_query_while_the_collector_runs(tmp_path: Path) -> None:
    """A query picks exactly the key's events; the bundle verifies offline with the vkey."""
    data = tmp_path / "data"
    collector = Collector.open(make_config(data))
    try:
        now = time.time_ns()
        events = [
            make_event("data_access", {"apiwatch.api_key.id": key, "url.path": f"/orders/{n}"},
                       timestamp_ns=now - (20 - n) * 10**9)
            for n, key in enumerate([KEY, OTHER] * 10)
        ]
        collector.pipeline.ingest("app", events)
        collector.ledger.checkpoint()
        bundle = tmp_path / "key.bundle"
        result = CliRunner().invoke(main, [
            "export", "--data", str(data), "--query", f"apiwatch.api_key.id:{KEY}",
            "--since", "1h", "--out", str(bundle),
        ])
        assert result.exit_code == 0, result.output
    finally:
        collector.close()
    records = json.loads(bundle.read_text())["records"]
    assert len(records) == 10
    vkeys = [p.read_text().strip() for p in (data / "ledger" / "keys").glob("*.vkey")]
    checked = CliRunner().invoke(main, ["verify-bundle", str(bundle), "--vkey", vkeys[0]])
    assert checked.exit_code == 0, checked.output
