"""The filter language: what each form parses to, and how bad input is refused."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apiwatch.store import QueryError, parse_filter, parse_since
from apiwatch.store._time import to_micros
from apiwatch.store.query import And, Cidr, Not, Op, Or, Range, Term, Wildcard

NOV1 = to_micros(datetime(2026, 11, 1, tzinfo=UTC))
DAY = 86_400_000_000


class TestParse:
    def test_not_binds_tighter_than_and_tighter_than_or(self) -> None:
        """`NOT a b OR c` is `((NOT a) AND b) OR c`."""
        got = parse_filter("NOT user.name:a event.action:b OR apiwatch.tenant:c")
        a, b, c = Term("user.name", "a"), Term("event.action", "b"), Term("apiwatch.tenant", "c")
        assert got == Or((And((Not(a), b)), c))

    def test_parentheses_and_lowercase_keywords(self) -> None:
        """Parentheses group; keywords are case-insensitive."""
        got = parse_filter("not (user.name:a or user.name:b) and tags:x")
        names = Or((Term("user.name", "a"), Term("user.name", "b")))
        assert got == And((Not(names), Term("tags", "x")))

    def test_values_are_typed_by_field(self) -> None:
        """Numbers become ints, IPs networks, unquoted globs wildcards, quoted text literal."""
        assert parse_filter("http.response.status_code>=400") == Range(
            "http.response.status_code", Op.GE, 400
        )
        assert parse_filter("source.ip:10.0.0.0/8") == Cidr(
            "source.ip", ipaddress.ip_network("10.0.0.0/8")
        )
        assert parse_filter("source.ip:::1") == Cidr("source.ip", ipaddress.ip_network("::1/128"))
        assert parse_filter("user.name:adm*") == Wildcard("user.name", "adm*")
        assert parse_filter('user.name:"adm* \\"x\\""') == Term("user.name", 'adm* "x"')
        assert parse_filter("labels.team:red") == Term("labels.team", "red")

    def test_dates_are_microsecond_ranges(self) -> None:
        """A bare date is its whole UTC day; `>` a date means after that day."""
        assert parse_filter("@timestamp>=2026-11-01") == Range("@timestamp", Op.GE, NOV1)
        assert parse_filter("@timestamp>2026-11-01") == Range("@timestamp", Op.GE, NOV1 + DAY)
        assert parse_filter("@timestamp<=2026-11-01") == Range("@timestamp", Op.LT, NOV1 + DAY)
        assert parse_filter("@timestamp:2026-11-01") == And(
            (Range("@timestamp", Op.GE, NOV1), Range("@timestamp", Op.LT, NOV1 + DAY))
        )
        assert parse_filter("@timestamp<2026-11-01T00:00:01+00:00") == Range(
            "@timestamp", Op.LT, NOV1 + 1_000_000
        )

    def test_blank_text_is_no_filter(self) -> None:
        """An empty or blank filter matches everything."""
        assert parse_filter("  ") is None

    @pytest.mark.parametrize(
        ("text", "message", "position"),
        [
            ("nosuch.field:x", "unknown field 'nosuch.field'", 0),
            ("user.name:a AND", "expected a term", 15),
            ("(user.name:a", "expected ')'", 12),
            ("user.name:a)", "unexpected ')'", 11),
            ("user.name", "expected ':'", 9),
            ('user.name:"open', "unterminated", 10),
            ("user.name:", "missing value", 10),
            ("user.name>=3", "needs a number", 0),
            ("http.response.status_code:abc", "not a 64-bit integer", 0),
            ("source.ip:10.0.0.300", "not an IP address", 0),
            ("@timestamp>2026-11-01T10:00:00", "RFC 3339", 0),
            ("user.name:a ; DROP", "unexpected character ';'", 12),
        ],
    )
    def test_errors_say_what_and_where(self, text: str, message: str, position: int) -> None:
        """A bad filter raises QueryError naming the problem and its position."""
        with pytest.raises(QueryError, match=re.escape(message)) as caught:
            parse_filter(text)
        assert caught.value.position == position

    def test_nesting_is_bounded(self) -> None:
        """Pathological nesting is a QueryError, not a RecursionError."""
        with pytest.raises(QueryError, match="nesting"):
            parse_filter("(" * 5000 + "user.name:a" + ")" * 5000)
        with pytest.raises(QueryError, match="nesting"):
            parse_filter("NOT " * 5000 + "user.name:a")

    @given(st.text(max_size=200))
    def test_arbitrary_text_raises_only_query_error(self, text: str) -> None:
        """Whatever the text, the parser returns an AST or raises QueryError."""
        with contextlib.suppress(QueryError):
            parse_filter(text)

    @given(
        st.lists(
            st.sampled_from(
                ["user.name:", "source.ip:", "tags:", "(", ")", " AND ", " OR ", "NOT ", '"',
                 "*", "10.0.0.0/8", "@timestamp>", "2026-11-01", ">=", "5", " "]
            ),
            max_size=30,
        )
    )
    def test_grammar_like_text_raises_only_query_error(self, parts: list[str]) -> None:
        """Near-miss filters built from the grammar's own pieces also fail only as QueryError."""
        with contextlib.suppress(QueryError):
            parse_filter("".join(parts))


class TestSince:
    NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("text", "delta"),
        [("15m", timedelta(minutes=15)), ("48h", timedelta(hours=48)), ("7d", timedelta(days=7)),
         ("2w", timedelta(weeks=2)), ("30s", timedelta(seconds=30))],
    )
    def test_relative_durations_count_back_from_now(self, text: str, delta: timedelta) -> None:
        """`--since 48h` is 48 hours before now."""
        assert parse_since(text, self.NOW) == self.NOW - delta

    def test_absolute_dates_are_accepted(self) -> None:
        """A date is its UTC midnight; a timestamp is itself."""
        assert parse_since("2026-11-01", self.NOW) == datetime(2026, 11, 1, tzinfo=UTC)
        assert parse_since("2026-11-01T05:00:00+01:00", self.NOW) == datetime(
            2026, 11, 1, 4, tzinfo=UTC
        )

    @pytest.mark.parametrize("text", ["48", "h", "3y", "999999999w", "-5m", ""])
    def test_bad_durations_are_query_errors(self, text: str) -> None:
        """Unknown units, missing numbers and overflows raise QueryError."""
        with pytest.raises(QueryError):
            parse_since(text, self.NOW)
