"""Syslog messages: RFC 5424 and RFC 3164 headers, structured data, and year-less dates."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from apiwatch.formats.syslog_parse import SyslogParseError, YearlessClock, parse_syslog


class TestRfc5424:
    def test_header_fields_and_bom_stripped_message(self) -> None:
        """PRI splits into facility and severity; the MSG loses its UTF-8 BOM (section 6.4)."""
        m = parse_syslog(
            "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \ufeff'su root'"
            " failed for lonvick on /dev/pts/8"
        )
        assert (m.rfc, m.facility, m.severity) == (5424, 4, 2)
        assert m.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
        assert (m.hostname, m.app_name, m.procid, m.msgid) == (
            "mymachine.example.com", "su", None, "ID47",
        )
        assert m.structured_data == {}
        assert m.msg == "'su root' failed for lonvick on /dev/pts/8"

    def test_structured_data_is_parsed_and_unescaped(self) -> None:
        """SD-PARAM values lose the escapes of `"`, `\\` and `]`; other backslashes stay."""
        m = parse_syslog(
            r'<165>1 2003-10-11T22:14:15.003-07:00 host app 1 - [exampleSDID@32473 iut="3" '
            r'eventSource="Appl\"ication\\ \]x\n"][examplePriority@32473 class="high"] hello'
        )
        assert m.structured_data == {
            "exampleSDID@32473": {"iut": "3", "eventSource": 'Appl"ication\\ ]x\\n'},
            "examplePriority@32473": {"class": "high"},
        }
        assert m.msg == "hello"
        assert m.procid == "1"

    def test_json_body_is_handed_back(self) -> None:
        """A message that is a JSON object is offered for the caller to decode."""
        m = parse_syslog('<14>1 - - apiwatch - - - {"event.action":"authz_fail"}')
        assert m.json_body() == '{"event.action":"authz_fail"}'
        assert m.timestamp is None

    @pytest.mark.parametrize(
        "line",
        [
            "<192>1 2003-10-11T22:14:15Z h a - - - too big a PRI",
            "<034>1 2003-10-11T22:14:15Z h a - - - leading zero",
            "<34>1 2003-10-11T22:14:15Z h a - - [x a=1] unquoted value",
            "<34>1 2003-10-11T22:14:15Z h a - - [x a=\"1\"]no space before MSG",
            "<34>1 2003-10-11T22:14:15 h a - - - no offset",
            "not syslog at all",
        ],
    )
    def test_malformed_messages_raise_with_a_reason(self, line: str) -> None:
        """A malformed message raises SyslogParseError, never another exception."""
        with pytest.raises(SyslogParseError):
            parse_syslog(line)


class TestRfc3164:
    def test_every_linux_2k_line_parses(self, shared_data: Path) -> None:
        """All 2,000 lines of loghub's Linux /var/log/messages read as RFC 3164."""
        lines = (shared_data / "logs/loghub/Linux/Linux_2k.log").read_text(
            encoding="utf-8", errors="replace"
        ).splitlines()
        clock = YearlessClock(2005)
        apps = Counter(parse_syslog(line, clock).app_name for line in lines)
        assert sum(apps.values()) == 2000
        assert apps["sshd(pam_unix)"] > 600

    def test_header_with_pri_and_tag(self) -> None:
        """`<PRI>Mmm dd hh:mm:ss host app[pid]: msg` fills every RFC 3164 field."""
        m = parse_syslog("<38>Jun  8 10:44:36 server sshd[3204729]: hello", YearlessClock(2024))
        assert (m.rfc, m.facility, m.severity) == (3164, 4, 6)
        assert m.timestamp == datetime(2024, 6, 8, 10, 44, 36, tzinfo=UTC)
        assert (m.hostname, m.app_name, m.procid, m.msg) == ("server", "sshd", "3204729", "hello")

    def test_iso_timestamp_header(self) -> None:
        """rsyslog's ISO 8601 file format keeps the sender's offset."""
        m = parse_syslog("2023-08-17T16:55:35.689651+02:00 mono endlessh[34256]: ACCEPT host=::1")
        assert m.timestamp == datetime(2023, 8, 17, 14, 55, 35, 689651, tzinfo=UTC)
        assert m.app_name == "endlessh"

    def test_impossible_date_is_a_parse_error(self) -> None:
        """29 February of a common year is refused with a reason."""
        with pytest.raises(SyslogParseError, match="TIMESTAMP"):
            parse_syslog("Feb 29 00:00:00 h app: x", YearlessClock(2023))


class TestYearlessClock:
    def test_zone_is_applied(self) -> None:
        """The time is read in the given zone."""
        clock = YearlessClock(2024, timezone(timedelta(hours=-5)))
        assert clock.resolve("Jan", "1", "00:00:00") == datetime(2024, 1, 1, 5, tzinfo=UTC)

    def test_more_than_a_day_ahead_is_last_year(self) -> None:
        """Without a year, a date over a day after now falls in the previous year."""
        clock = YearlessClock(now=datetime(2025, 3, 1, tzinfo=UTC))
        assert clock.resolve("Mar", "1", "23:59:59").year == 2025
        assert clock.resolve("Mar", "2", "00:00:01").year == 2024
