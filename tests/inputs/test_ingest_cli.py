"""`apiwatch ingest`: real logs and the CrowdSec hub inputs into ledger and store, on event time."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from inputs_support import make_config, stored

from apiwatch.cli import main
from apiwatch.collector.runtime import Collector
from apiwatch.events import make_event
from apiwatch.formats.ecs import encode_ecs
from apiwatch.store import Query

LOGS = "logs/loghub/OpenSSH/OpenSSH_2k.log"


def ingest(data: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """Run `apiwatch ingest --json` on `data`; the exit code and the printed counts."""
    result = CliRunner().invoke(main, ["ingest", "--data", str(data), "--json", *args])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def count(data: Path, text: str) -> int:
    """How many stored events match filter `text`."""
    collector = Collector.open(make_config(data))
    try:
        return collector.store.count(Query.parse(text))
    finally:
        collector.close()


def truth(shared_data: Path, name: str) -> list[dict[str, str]]:
    with (shared_data / "logs/truth" / name).open(newline="") as fh:
        return list(csv.DictReader(fh))


class TestRealLogs:
    @pytest.fixture(scope="class")
    def data(self, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
        """One data directory holding the loghub and elastic-integrations logs."""
        folder = tmp_path_factory.mktemp("real") / "data"
        logs = shared_data / "logs"
        code, _ = ingest(
            folder, "--year", "2024",
            str(logs / "loghub/OpenSSH/OpenSSH_2k.log"), str(logs / "loghub/Linux/Linux_2k.log"),
            str(logs / "elastic_integrations/test-auth.log"),
            str(logs / "elastic_integrations/nginx-test-access.log"),
        )
        assert code == 0
        return folder

    @pytest.mark.parametrize("name", ["ssh_OpenSSH_2k_log.csv", "ssh_test-auth_log.csv"])
    def test_failed_logins_per_ip_match_truth(
        self, data: Path, shared_data: Path, name: str
    ) -> None:
        """Per IP, the stored `Failed ...` logins equal the truth's failures column."""
        for row in truth(shared_data, name):
            text = f'source.address:"{row["ip"]}" event.code:failed_auth'
            assert count(data, text) == int(row["failures"]), row["ip"]

    def test_linux_pam_failures_per_host_match_truth(self, data: Path, shared_data: Path) -> None:
        """Linux_2k's PAM failures per remote host (IP or name) equal the truth's failures."""
        for row in truth(shared_data, "ssh_Linux_2k_log.csv"):
            text = f'source.address:"{row["ip"]}" event.code:pam_auth_failure'
            assert count(data, text) == int(row["failures"]), row["ip"]

    def test_nginx_client_errors_per_ip_match_truth(self, data: Path, shared_data: Path) -> None:
        """Per client, the stored nginx requests and 4xx answers equal the truth's counts."""
        for row in truth(shared_data, "http_nginx_test_access_log.csv"):
            ip = row["ip"]
            assert count(data, f"event.dataset:nginx.access source.ip:{ip}") == int(
                row["requests"])
            errors = (f"event.dataset:nginx.access source.ip:{ip} "
                      "http.response.status_code>=400 http.response.status_code<500")
            assert count(data, errors) == int(row["err_4xx"])

    def test_events_keep_their_own_time(self, data: Path) -> None:
        """Events carry the time of their log line (year from --year), not the ingest time."""
        assert count(data, "event.dataset:sshd.auth @timestamp<2025-01-01") > 2000
        assert count(data, "event.dataset:sshd.auth @timestamp>=2025-01-01") == 0


class TestCrowdSecInputs:
    def _inputs(self, shared_data: Path) -> dict[str, list[Path]]:
        hub = shared_data / "crowdsec_hub"
        fmts = {"nginx": "nginx", "apache2": "apache"}
        out: dict[str, list[Path]] = {"sshd": [], "nginx": [], "apache": []}
        with (hub / "tests_index.csv").open(newline="") as fh:
            for row in csv.DictReader(fh):
                kind = row["log_type"]
                fmt = "sshd" if kind == "syslog" and row["test"].startswith("ssh") else fmts.get(
                    kind)
                if fmt:
                    out[fmt].append(hub / "tests" / row["test"] / row["log_files"])
        return out

    @pytest.mark.parametrize("fmt", ["sshd", "nginx", "apache"])
    def test_every_line_is_accounted_for_and_failures_kept(
        self, shared_data: Path, tmp_path: Path, fmt: str
    ) -> None:
        """Every line of the hub's inputs is parsed, ignored or kept as a parse failure; the
        failures are stored with their raw line and make the exit status 1."""
        files = self._inputs(shared_data)[fmt]
        assert len(files) >= 10
        code, counts = ingest(tmp_path / "data", "--format", fmt, "--year", "2024",
                              *map(str, files))
        for entry, path in zip(counts["files"], files, strict=True):
            lines = path.read_bytes().splitlines()
            assert entry["lines"] == len(lines), path
        total = counts["total"]
        assert total["parsed"] > 0.9 * (total["lines"] - total["ignored"])
        failures = count(tmp_path / "data", "event.action:parse_failure")
        assert failures == total["unparsed"]
        # Events of the ingested source only: the detection rules add `alert_raised` events
        # of their own (source `apiwatch`), which the attacks in these inputs do raise.
        assert count(tmp_path / "data", "apiwatch.source:ingest NOT "
                     "event.action:parse_failure") == total["events"]
        assert code == (1 if total["unparsed"] else 0)


class TestIngestBehaviour:
    def test_unparsed_lines_are_kept_and_make_exit_status_one(self, tmp_path: Path) -> None:
        """A line that is not an access log line is stored as `parse_failure` with the line."""
        log = tmp_path / "access.log"
        log.write_text(
            '10.0.0.1 - - [10/Oct/2024:13:55:36 +0000] "GET /a HTTP/1.1" 200 5 "-" "curl"\n'
            "this is not an access log line\n"
        )
        code, counts = ingest(tmp_path / "data", "--format", "nginx", str(log))
        assert code == 1
        assert counts["total"] == {"lines": 2, "parsed": 1, "ignored": 0, "unparsed": 1,
                                   "events": 1}
        collector = Collector.open(make_config(tmp_path / "data"))
        try:
            (failure,) = stored(collector, "event.action:parse_failure")
        finally:
            collector.close()
        assert failure["event.original"] == "this is not an access log line"

    def test_auto_detects_format_per_file(self, shared_data: Path, tmp_path: Path) -> None:
        """--format auto reads an auth.log as sshd and an access log as nginx."""
        _, counts = ingest(tmp_path / "data", str(shared_data / LOGS),
                           str(shared_data / "logs/elastic_integrations/nginx-test-access.log"))
        assert [f["format"] for f in counts["files"]] == ["sshd", "nginx"]

    def test_jsonl_reingest_stores_no_duplicates(self, tmp_path: Path) -> None:
        """JSON lines with sequence numbers ingested twice are stored once (same source)."""
        events = [make_event("authz_fail", {"apiwatch.seq": n, "user.name": "eve"})
                  for n in (1, 2, 3)]
        log = tmp_path / "events.jsonl"
        log.write_bytes(b"".join(encode_ecs(e) for e in events) + b"{broken\n")
        for _ in range(2):
            code, counts = ingest(tmp_path / "data", "--format", "jsonl", "--source", "app",
                                  str(log))
            assert code == 1
            assert counts["total"]["unparsed"] == 1
        assert count(tmp_path / "data", "event.action:authz_fail apiwatch.source:app") == 3

    def test_unknown_format_is_a_usage_error(self, tmp_path: Path) -> None:
        """A file whose format cannot be guessed stops with exit status 2 before storing."""
        log = tmp_path / "mystery.txt"
        log.write_text("nothing recognisable\n")
        result = CliRunner().invoke(main, ["ingest", "--data", str(tmp_path / "d"), str(log)])
        assert result.exit_code == 2
        assert "--format" in result.output
        assert not (tmp_path / "d").exists()


def test_ingested_brute_force_raises_alerts(tmp_path: Path, shared_data: Path) -> None:
    """`apiwatch ingest` runs the detection rules: loghub's worst attackers get alerts."""
    data = tmp_path / "data"
    ingest(data, "--format", "sshd", "--year", "2024",
           str(shared_data / "logs/loghub/OpenSSH/OpenSSH_2k.log"))
    result = CliRunner().invoke(main, ["alerts", "--data", str(data), "--json", "--limit", "1000"])
    assert result.exit_code == 0, result.output
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    alerted = {a["group"].get("source.ip") for a in alerts}
    worst = [row["ip"] for row in truth(shared_data, "ssh_OpenSSH_2k_log.csv")
             if int(row["failures"]) >= 20]
    assert worst, "the truth file lists heavy attackers"
    assert set(worst) <= alerted
