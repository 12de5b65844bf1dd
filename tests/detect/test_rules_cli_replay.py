"""`apiwatch rules test` replays time like the collector (time-driven rules judged as event time
moves and after the last event), and `rules lint` / `rules list` say which rules need an input
the config lacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from apiwatch.cli import main
from apiwatch.detect.rules import TEST_EPOCH
from apiwatch.events import format_timestamp

SILENCE = """
id: quiet_source
title: Source went quiet
filter: {apiwatch.source: {exists: true}}
group_by: [apiwatch.source]
window: {type: absence, factor: 10, min_silence: 5m, min_events: 20}
tests:
  - name: a source that stops is reported once the file's clock runs on
    events:
      - {repeat: 30, every: 10, event: {event.action: http_request, apiwatch.source: api-1}}
    alerts: 1
"""
FEW_EVENTS = """
title: Too few heartbeats
name: few
correlation:
  type: event_count
  rules: [beat]
  group-by: [host.name]
  timespan: 10m
  condition: {lt: 3}
---
title: heartbeat
name: beat
logsource: {category: application}
detection: {sel: {event.action: heartbeat}, condition: sel}
"""
ASN_DB = Path(__file__).resolve().parents[1] / "enrich" / "data" / "GeoLite2-ASN-Test.mmdb"


def _write_events(path: Path, items: list[tuple[float, dict[str, Any]]]) -> Path:
    lines = [json.dumps({"@timestamp": format_timestamp(round((TEST_EPOCH + t) * 1e9)),
                         "event.id": f"e{i}", **fields}) for i, (t, fields) in enumerate(items)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rules_test(tmp_path: Path, rule: str, items: list[tuple[float, dict[str, Any]]],
                *extra: str) -> dict[str, Any]:
    rule_path = tmp_path / "rule.yml"
    rule_path.write_text(rule)
    events = _write_events(tmp_path / "events.jsonl", items)
    result = CliRunner().invoke(main, ["rules", "test", str(rule_path), str(events), "--json",
                                       *extra])
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.output)
    return out


def _beats(n: int, start: float = 0.0) -> list[tuple[float, dict[str, Any]]]:
    return [(start + i * 10.0, {"event.action": "http_request", "apiwatch.source": "api-1"})
            for i in range(n)]


def test_a_source_silent_at_the_end_is_reported_after_the_flush(tmp_path: Path) -> None:
    """A source that sends 30 events then stops is reported silent once the clock runs on past
    the last event (and the inline test, replayed the same way, passes); `--flush 0` stops
    the clock at the last event."""
    out = _rules_test(tmp_path, SILENCE, _beats(30))
    assert [(a["rule"], a["group"]) for a in out["alerts"]] == [
        ("quiet_source", {"apiwatch.source": "api-1"})]
    assert out["alerts"][0]["count"] == 0  # a silence has no events
    assert [t["ok"] for t in out["inline_tests"]] == [True]
    assert _rules_test(tmp_path, SILENCE, _beats(30), "--flush", "0")["alerts"] == []


def test_a_silence_inside_the_file_is_reported_as_it_happens(tmp_path: Path) -> None:
    """A source silent for an hour in the middle of the file is reported during the replay,
    at the minute its silence became long enough, not at the end."""
    items = [*_beats(30), *_beats(30, start=3900.0)]
    out = _rules_test(tmp_path, SILENCE, items, "--flush", "0")
    assert len(out["alerts"]) == 1
    last_beat = TEST_EPOCH + 290
    assert out["alerts"][0]["last_seen"] <= format_timestamp(round((last_beat + 360) * 1e9))


def test_a_sigma_window_still_open_at_the_end_is_judged(tmp_path: Path) -> None:
    """A Sigma `lt` window holding one heartbeat when the file ends fires once its 10 minutes
    are over, counting the one event of its window."""
    items = [(0.0, {"event.action": "heartbeat", "host.name": "db1"})]
    out = _rules_test(tmp_path, FEW_EVENTS, items)
    assert [(a["rule"], a["group"], a["count"]) for a in out["alerts"]] == [
        ("few", {"host.name": "db1"}, 1)]
    assert _rules_test(tmp_path, FEW_EVENTS, items, "--flush", "0")["alerts"] == []


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["rules", *args])


def _config(tmp_path: Path, asn_db: str) -> str:
    path = tmp_path / "apiwatch.toml"
    path.write_text(f'[enrich]\nasn_db = "{asn_db}"\n')
    return str(path)


def test_lint_notes_rules_that_need_an_asn_database(tmp_path: Path) -> None:
    """`rules lint` passes the catalogue and notes the AS-number rules as loaded but quiet
    without an ASN database; with one configured there is nothing to note."""
    result = _invoke("lint", "--config", _config(tmp_path, ""))
    assert result.exit_code == 0, result.output
    assert ("  api_key_new_asn: needs source.as.number: no ASN database configured "
            "([enrich] asn_db) (loaded, quiet)") in result.output.splitlines()
    report = json.loads(_invoke("lint", "--json", "--config",
                                _config(tmp_path, str(ASN_DB))).output)
    assert report[0]["error"] is None
    assert report[0]["needs"] == {}


def test_list_shows_which_rules_are_active(tmp_path: Path) -> None:
    """`rules list --json` marks the AS-number rules inactive, with what they need, until an
    ASN database is configured; the others are active either way."""
    rows = json.loads(_invoke("list", "--json", "--config", _config(tmp_path, "")).output)
    by_id = {r["id"]: r for r in rows}
    assert by_id["api_key_new_asn"]["active"] is False
    assert by_id["api_key_new_asn"]["needs"] == [
        "needs source.as.number: no ASN database configured ([enrich] asn_db)"]
    assert by_id["api_key_new_network"]["active"] is True
    rows = json.loads(_invoke("list", "--json", "--config",
                              _config(tmp_path, str(ASN_DB))).output)
    assert all(r["active"] for r in rows)
