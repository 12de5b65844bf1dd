"""No input line makes a parser raise: it becomes events or a parse_failure, and is counted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apiwatch.formats.autodetect import detect_format, parse_lines
from apiwatch.formats.parsed import ParseStats

# Text that often gets past the first checks: real prefixes followed by anything.
PREFIXES = st.sampled_from([
    "", "Dec 10 09:32:20 LabSZ sshd[1]: ", "<34>1 2003-10-11T22:14:15Z h sshd 1 - ",
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "', "<13>Feb 29 00:00:00 h a: ",
    "Dec 10 09:32:20 LabSZ sshd[1]: message repeated 3 times: [ ",
])
LINES = st.lists(st.builds(lambda p, t: p + t, PREFIXES, st.text(max_size=80)), max_size=8)


@pytest.mark.parametrize("fmt", ["sshd", "nginx", "apache", "syslog"])
@given(lines=LINES)
def test_arbitrary_lines_never_raise_and_are_all_counted(fmt: str, lines: list[str]) -> None:
    """Every line is parsed, ignored or returned as parse_failure; the counts add up."""
    stats = ParseStats()
    events = list(parse_lines(fmt, lines, stats=stats))
    assert stats.lines == len(lines)
    failures = [e for e in events if e["event.action"] == "parse_failure"]
    assert len(failures) == stats.unparsed
    assert len(events) == stats.events + stats.unparsed


@given(lines=LINES)
def test_detect_format_never_raises(lines: list[str]) -> None:
    """Format detection answers a known format or None on any input."""
    assert detect_format(lines) in (None, "sshd", "nginx", "apache", "syslog", "jsonl")
