"""nginx / Apache access log lines as the events the HTTP middleware records."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from apiwatch.events import Event
from apiwatch.formats.access_log import AccessLogParser
from apiwatch.formats.autodetect import parse_lines
from apiwatch.formats.parsed import ParseStats

COMBINED = (
    '203.0.113.9 - alice [10/Oct/2000:13:55:36 -0700] "GET /api/items?id=7 HTTP/1.1" {status} 2326'
    ' "http://example.com/start" "curl/8.5.0"'
)
# nginx and Apache error-log lines sit beside access lines in some CrowdSec test inputs.
ERROR_LOG = re.compile(r"\[\w{3} \w{3} |\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[")


def _one(line: str) -> Event:
    [event] = AccessLogParser()(line)
    return event


class TestFields:
    def test_combined_line_gives_the_middleware_fields(self) -> None:
        """A Combined line sets source, user, method, URL parts, version, status, size, UA."""
        event = _one(COMBINED.format(status=200))
        assert event["event.action"] == "http_request"
        assert event["event.outcome"] == "success"
        assert event["@timestamp"] == "2000-10-10T20:55:36.000000Z"
        assert event["source.ip"] == "203.0.113.9"
        assert event["user.name"] == "alice"
        assert event["http.request.method"] == "GET"
        assert event["url.original"] == "/api/items?id=7"
        assert event["url.path"] == "/api/items"
        assert event["url.query"] == "id=7"
        assert event["apiwatch.route"] == "/api/items"
        assert event["http.version"] == "1.1"
        assert event["http.response.status_code"] == 200
        assert event["http.response.body.bytes"] == 2326
        assert event["http.request.referrer"] == "http://example.com/start"
        assert event["user_agent.original"] == "curl/8.5.0"
        assert event["event.dataset"] == "nginx.access"

    @pytest.mark.parametrize(
        ("status", "action", "outcome"),
        [(401, "authn_token_invalid", "failure"), (403, "authz_fail", "failure"),
         (404, "http_request", "failure"), (500, "http_request", "failure"),
         (302, "http_request", "success")],
    )
    def test_status_chooses_the_action(self, status: int, action: str, outcome: str) -> None:
        """401 is authn_token_invalid, 403 authz_fail, others http_request failing from 400."""
        event = _one(COMBINED.format(status=status))
        assert (event["event.action"], event["event.outcome"]) == (action, outcome)

    def test_common_format_with_vhost_and_trailing_fields(self) -> None:
        """Common format, a leading virtual host and extra trailing fields still parse."""
        event = _one('example.org ::1 - - [01/Jan/2024:00:00:00 +0000] "POST /login HTTP/2.0"'
                     ' 204 - 0.003 upstream=10.0.0.2:8080')
        assert event["url.domain"] == "example.org"
        assert event["source.ip"] == "::1"
        assert "http.response.body.bytes" not in event
        assert "user_agent.original" not in event

    def test_tls_handshake_on_plain_port_still_parses(self, shared_data: Path) -> None:
        """Escaped binary request lines (a TLS ClientHello) give a 400 event without a method."""
        log = shared_data / "crowdsec_hub/tests/apache2-malformed/apache2-logs.log"
        events = list(parse_lines("apache", log.read_text().splitlines()))
        assert events
        for event in events:
            assert event["event.action"] == "http_request"
            assert event["http.response.status_code"] == 400
            assert event["event.reason"] == "malformed request line"
            assert "http.request.method" not in event
            assert event["event.original"].count("\\x16\\x03\\x01") == 1

    def test_absolute_form_target_keeps_its_path(self) -> None:
        """A proxy-style absolute URL keeps url.original and gives its path in url.path."""
        event = _one('1.2.3.4 - - [08/Aug/2022:21:18:26 +0000] "GET http://x.test:80/ip4.php'
                     ' HTTP/1.0" 400 255 "-" "-"')
        assert event["url.original"] == "http://x.test:80/ip4.php"
        assert event["url.path"] == "/ip4.php"

    def test_line_behind_a_syslog_header_parses(self) -> None:
        """An access line sent through syslog (nginx `access_log syslog:`) is read."""
        event = _one("Sep 15 16:13:46 web nginx[2869]: " + COMBINED.format(status=403))
        assert event["event.action"] == "authz_fail"


class TestRealLogs:
    def test_per_ip_requests_and_4xx_match_truth(self, shared_data: Path) -> None:
        """Per IP, events equal the truth's requests and 4xx statuses its err_4xx."""
        log = shared_data / "logs/elastic_integrations/nginx-test-access.log"
        events = list(parse_lines("nginx", log.read_text().splitlines()))
        requests = Counter(e["source.ip"] for e in events)
        errors = Counter(
            e["source.ip"] for e in events if 400 <= e["http.response.status_code"] < 500
        )
        with (shared_data / "logs/truth/http_nginx_test_access_log.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert rows
        for row in rows:
            assert requests[row["ip"]] == int(row["requests"]), row["ip"]
            assert errors[row["ip"]] == int(row["err_4xx"]), row["ip"]
        assert sum(requests.values()) == sum(int(r["requests"]) for r in rows)

    def test_crowdsec_http_inputs_are_all_accounted_for(self, shared_data: Path) -> None:
        """Every line of CrowdSec's nginx and apache2 test inputs is parsed, ignored (blank) or
        a parse_failure, and only error-log lines or a truncated line fail."""
        hub = shared_data / "crowdsec_hub"
        with (hub / "tests_index.csv").open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["log_type"] in ("nginx", "apache2")]
        assert len(rows) == 50
        parsed = 0
        for row in rows:
            fmt = "nginx" if row["log_type"] == "nginx" else "apache"
            lines = (hub / "tests" / row["test"] / row["log_files"]).read_text().splitlines()
            stats = ParseStats()
            for event in parse_lines(fmt, lines, stats=stats):
                if event["event.action"] == "parse_failure":
                    line = event["event.original"]
                    assert ERROR_LOG.match(line) or " - [" in line, line
            assert stats.lines == len(lines)
            parsed += stats.parsed
        assert parsed >= 370
