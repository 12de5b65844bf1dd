"""sshd auth.log lines as events, checked against real logs and counts derived from them."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from apiwatch.events import Event
from apiwatch.formats.autodetect import parse_lines
from apiwatch.formats.parsed import ParseStats
from apiwatch.formats.sshd import SshdParser

LOGS = {
    "OpenSSH_2k": ("logs/loghub/OpenSSH/OpenSSH_2k.log", "logs/truth/ssh_OpenSSH_2k_log.csv"),
    "Linux_2k": ("logs/loghub/Linux/Linux_2k.log", "logs/truth/ssh_Linux_2k_log.csv"),
    "test-auth": (
        "logs/elastic_integrations/test-auth.log",
        "logs/truth/ssh_test-auth_log.csv",
    ),
}
# Truth column -> the event.code values that count towards it (per source.address).
COLUMNS = {
    "failures": {"failed_auth"},  # `Failed <method> ...` lines, repeats expanded
    "invalid_user_lines": {"invalid_user"},
    "no_ident": {"no_identification"},
    "successes": {"accepted"},
}


def _parse(path: Path, stats: ParseStats | None = None) -> list[Event]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return list(parse_lines("sshd", lines, stats=stats, year=2024))


def _per_source(events: list[Event], codes: set[str]) -> Counter[str]:
    return Counter(e["source.address"] for e in events if e.get("event.code") in codes)


@pytest.fixture(scope="module")
def parsed(shared_data: Path) -> dict[str, tuple[list[Event], ParseStats, int]]:
    out = {}
    for name, (log, _) in LOGS.items():
        stats = ParseStats()
        path = shared_data / log
        total = len(path.read_text(encoding="utf-8", errors="replace").splitlines())
        out[name] = (_parse(path, stats), stats, total)
    return out


def _truth(shared_data: Path, name: str) -> list[dict[str, str]]:
    with (shared_data / LOGS[name][1]).open(newline="") as f:
        return list(csv.DictReader(f))


class TestAgainstTruth:
    @pytest.mark.parametrize("name", ["OpenSSH_2k", "test-auth"])
    @pytest.mark.parametrize("column", sorted(COLUMNS))
    def test_per_ip_counts_match_truth(
        self, parsed: dict[str, tuple[list[Event], ParseStats, int]], shared_data: Path,
        name: str, column: str,
    ) -> None:
        """Per source, the events of each rule equal the truth column counting the same lines."""
        counts = _per_source(parsed[name][0], COLUMNS[column])
        for row in _truth(shared_data, name):
            assert counts[row["ip"]] == int(row[column]), (row["ip"], column)

    def test_linux_pam_failures_match_truth_per_host(
        self, parsed: dict[str, tuple[list[Event], ParseStats, int]], shared_data: Path
    ) -> None:
        """The old `sshd(pam_unix)` failures of Linux_2k count per rhost as the truth's
        `failures` and `pam_failures` (that log has no `Failed password` lines)."""
        counts = _per_source(parsed["Linux_2k"][0], {"pam_auth_failure"})
        for row in _truth(shared_data, "Linux_2k"):
            assert counts[row["ip"]] == int(row["pam_failures"]) == int(row["failures"]), row

    def test_openssh_pam_failures_differ_only_by_singular_summaries(
        self, parsed: dict[str, tuple[list[Event], ParseStats, int]], shared_data: Path
    ) -> None:
        """PAM failures per rhost equal the truth's, less `PAM 1 more authentication failure;`
        summary lines, which the truth's substring rule counts and the parser ignores."""
        events = parsed["OpenSSH_2k"][0]
        counts = _per_source(events, {"pam_auth_failure"})
        log = (shared_data / LOGS["OpenSSH_2k"][0]).read_text(encoding="utf-8")
        summaries = Counter(
            line.rsplit("rhost=", 1)[1].split()[0]
            for line in log.splitlines()
            if "PAM 1 more authentication failure;" in line
        )
        for row in _truth(shared_data, "OpenSSH_2k"):
            assert counts[row["ip"]] == int(row["pam_failures"]) - summaries[row["ip"]], row

    @pytest.mark.parametrize("name", sorted(LOGS))
    def test_every_line_is_accounted_for(
        self, parsed: dict[str, tuple[list[Event], ParseStats, int]], name: str
    ) -> None:
        """Parsed, ignored and unparsed lines add up to the file; these real logs all parse."""
        events, stats, total = parsed[name]
        assert stats.lines == total
        assert stats.unparsed == 0
        assert stats.events == len(events)


class TestCrowdSecTests:
    def _tests(self, shared_data: Path) -> list[tuple[Path, dict[str, object]]]:
        hub = shared_data / "crowdsec_hub"
        out = []
        with (hub / "tests_index.csv").open(newline="") as f:
            for row in csv.DictReader(f):
                folder = hub / "tests" / row["test"]
                if row["log_type"] == "syslog" and row["test"].startswith("ssh"):
                    expected = folder / "expected.json"
                    alerts = json.loads(expected.read_text()) if expected.exists() else {}
                    out.append((folder / row["log_files"], alerts))
        assert len(out) >= 12
        return out

    def test_each_alerted_source_has_at_least_the_overflow_count(self, shared_data: Path) -> None:
        """Every IP CrowdSec alerts on in its sshd tests has as many failure events as the
        alert counted, and tests expecting no alert give no failure at all."""
        for log, expected in self._tests(shared_data):
            stats = ParseStats()
            events = _parse(log, stats)
            assert stats.unparsed == 0, log
            failures = Counter(
                e["source.ip"] for e in events if e["event.action"] == "authn_login_fail"
            )
            alerts = expected.get("alerts", [])
            assert isinstance(alerts, list)
            for alert in alerts:
                if alert["scope"] == "Ip" and "bf" in alert["scenario"] + log.name:
                    for ip in alert["sources"]:
                        assert failures[ip] >= alert["events_count"], (log.name, ip)
            if not alerts:
                assert not failures, log.name


LINE = "Dec 10 09:32:20 LabSZ sshd[24680]: "


class TestMessages:
    @pytest.mark.parametrize(
        ("message", "action", "code", "user", "ip", "port"),
        [
            ("Failed password for invalid user  0 from 5.188.10.180 port 49621 ssh2",
             "authn_login_fail", "failed_auth", " 0", "5.188.10.180", 49621),
            ("Failed none for invalid user admin from 1.2.3.4 port 22 ssh2",
             "authn_login_fail", "failed_auth", "admin", "1.2.3.4", 22),
            ("Invalid user pascal5 from 35.188.49.176 port 53502",
             "authn_login_fail", "invalid_user", "pascal5", "35.188.49.176", 53502),
            ("Accepted publickey for vagrant from 10.0.2.2 port 63673 ssh2: RSA 39:33:99",
             "authn_login_success", "accepted", "vagrant", "10.0.2.2", 63673),
            ("Connection closed by authenticating user root 10.0.0.5 port 4242 [preauth]",
             "authn_login_fail", "preauth_disconnect", "root", "10.0.0.5", 4242),
            ("Disconnected from invalid user oracle 10.0.0.6 port 4243 [preauth]",
             "authn_login_fail", "preauth_disconnect", "oracle", "10.0.0.6", 4243),
            ("Received disconnect from 52.80.34.196: 11: Bye Bye [preauth]",
             "authn_login_fail", "preauth_disconnect", None, "52.80.34.196", None),
            ("error: maximum authentication attempts exceeded for root from 10.0.0.7 port 5 "
             "ssh2 [preauth]", "authn_login_fail", "max_auth_attempts", "root", "10.0.0.7", 5),
            ("Did not receive identification string from 89.160.20.156",
             "authn_login_fail", "no_identification", None, "89.160.20.156", None),
            ("Bad protocol version identification 'GET / HTTP/1.1' from 10.0.0.8 port 6",
             "authn_login_fail", "bad_protocol", None, "10.0.0.8", 6),
            ("Unable to negotiate with 123.57.135.134 port 45626: no matching key exchange "
             "method found. Their offer: diffie-hellman-group1-sha1 [preauth]",
             "authn_login_fail", "negotiation_failed", None, "123.57.135.134", 45626),
            ("fatal: Timeout before authentication for 192.168.9.212 port 47056",
             "authn_login_fail", "preauth_timeout", None, "192.168.9.212", 47056),
        ],
    )
    def test_security_messages_give_their_event(
        self, message: str, action: str, code: str, user: str | None, ip: str,
        port: int | None,
    ) -> None:
        """Each recognised sshd message gives one event with its action, rule, user and source."""
        [event] = SshdParser(year=2024)(LINE + message)
        assert event["event.action"] == action
        assert event["event.code"] == code
        assert event.get("user.name") == user
        assert event["source.ip"] == ip
        assert event.get("source.port") == port
        assert event["event.dataset"] == "sshd.auth"
        assert event["event.original"] == LINE + message
        assert event["host.hostname"] == "LabSZ"
        assert event["process.pid"] == 24680

    def test_pam_failure_with_host_name_sets_source_domain(self) -> None:
        """A PAM failure whose rhost is a name sets source.domain, not source.ip."""
        [event] = SshdParser(year=2024)(
            LINE + "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh"
            " ruser= rhost=5.36.59.76.dynamic-dsl-ip.omantel.net.om  user=root"
        )
        assert event["source.domain"] == "5.36.59.76.dynamic-dsl-ip.omantel.net.om"
        assert "source.ip" not in event
        assert event["user.name"] == "root"

    def test_message_repeated_expands_to_n_events(self) -> None:
        """`message repeated N times: [ M]` gives N events of M."""
        events = SshdParser(year=2024)(
            LINE + "message repeated 5 times: [ Failed password for root from 5.36.59.76 port "
            "42393 ssh2]"
        )
        assert len(events) == 5
        assert {e["event.code"] for e in events} == {"failed_auth"}

    def test_benign_and_foreign_lines_give_nothing(self) -> None:
        """Session lines and other programs' lines are recognised and give no event."""
        parser = SshdParser(year=2024)
        assert parser(LINE + "pam_unix(sshd:session): session opened for user x by (uid=0)") == []
        assert parser("Feb 22 11:47:05 localhost groupadd[6991]: new group: name=apache") == []

    def test_unknown_sshd_message_is_a_parse_failure(self) -> None:
        """An sshd message no rule knows is returned as parse_failure with the raw line."""
        stats = ParseStats()
        [event] = parse_lines("sshd", [LINE + "something new happened"], stats=stats)
        assert event["event.action"] == "parse_failure"
        assert event["event.original"] == LINE + "something new happened"
        assert stats.unparsed == 1


class TestTimestamps:
    def test_yearless_time_takes_the_given_year_and_zone(self) -> None:
        """With a year and a zone, `Dec 10 09:32:20` is that local time in that year."""
        tz = timezone(timedelta(hours=8))
        [event] = SshdParser(year=2017, tz=tz)(LINE + "Invalid user a from 1.2.3.4")
        assert event["@timestamp"] == "2017-12-10T01:32:20.000000Z"

    def test_yearless_time_in_the_future_is_last_year(self) -> None:
        """Without a year, a date more than a day ahead of now belongs to the previous year."""
        now = datetime(2025, 1, 5, tzinfo=UTC)
        [event] = SshdParser(now=now)(LINE + "Invalid user a from 1.2.3.4")
        assert event["@timestamp"].startswith("2024-12-10T09:32:20")
        [event] = SshdParser(now=now)("Jan  5 23:00:00 h sshd[1]: Invalid user a from 1.2.3.4")
        assert event["@timestamp"].startswith("2025-01-05T23:00:00")

    def test_iso_and_rfc5424_prefixes_are_read(self) -> None:
        """sshd lines behind an ISO 8601 or an RFC 5424 header parse with their own time."""
        parser = SshdParser()
        [iso] = parser("2023-10-05T11:47:20.799042+02:00 leto sshd[1]: Invalid user a from ::1")
        assert iso["@timestamp"] == "2023-10-05T09:47:20.799042Z"
        assert iso["source.ip"] == "::1"
        [rfc] = parser("<38>1 2024-01-02T03:04:05Z h sshd 7 - - Invalid user b from 1.2.3.4")
        assert rfc["@timestamp"] == "2024-01-02T03:04:05.000000Z"
        assert rfc["process.pid"] == 7
