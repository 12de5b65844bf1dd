"""make_event and SequenceCounter: ids, timestamps, ECS order, vocabulary values, sequence."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime

import pytest

from apiwatch.errors import UnknownActionError
from apiwatch.events import SequenceCounter, lookup, make_event, parse_timestamp

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
NS = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456789Z


class TestIds:
    def test_event_id_is_uuid7(self) -> None:
        """event.id is an RFC 9562 version 7 UUID of the variant RFC 9562 defines."""
        value = uuid.UUID(make_event("authn_login_success")["event.id"])
        assert value.version == 7
        assert value.variant == uuid.RFC_4122

    def test_event_id_carries_the_event_time(self) -> None:
        """The first 48 bits of event.id are the event's Unix time in milliseconds."""
        value = uuid.UUID(make_event("authn_login_success", timestamp_ns=NS)["event.id"])
        assert value.int >> 80 == NS // 1_000_000

    def test_ids_sort_by_time(self) -> None:
        """Ids of events made in time order sort in that order, within one millisecond too."""
        times = [NS + i * 300_000 for i in range(50)]  # 0.3 ms apart
        ids = [make_event("http_request", timestamp_ns=t)["event.id"] for t in times]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)


class TestTimestamp:
    def test_utc_microseconds_with_z(self) -> None:
        """@timestamp is RFC 3339 UTC with six fractional digits and a `Z`, truncated not
        rounded."""
        stamp = make_event("authn_login_success", timestamp_ns=NS)["@timestamp"]
        assert stamp == "2026-01-01T00:00:00.123456Z"

    def test_current_time_by_default(self) -> None:
        """Without timestamp_ns the event is stamped now, in UTC."""
        before = datetime.now(UTC)
        stamp = make_event("authn_login_success")["@timestamp"]
        after = datetime.now(UTC)
        assert _TIMESTAMP.fullmatch(stamp)
        assert before.replace(microsecond=0) <= parse_timestamp(stamp) <= after


class TestShape:
    def test_ecs_logging_order(self) -> None:
        """@timestamp, log.level and message come first, in that order (ECS logging spec)."""
        event = make_event("authz_fail", {"user.name": "joebob1"}, message="denied")
        assert list(event)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]

    @pytest.mark.parametrize("name", ["authn_login_fail", "authz_fail", "malicious_sqli",
                                      "http_request", "parse_failure"])
    def test_vocabulary_values(self, name: str) -> None:
        """Action, kind, categories, types, outcome and level come from the vocabulary."""
        action = lookup(name)
        event = make_event(name)
        assert event["event.action"] == name
        assert event["event.kind"] == action.kind
        assert event["event.category"] == list(action.category)
        assert event["event.type"] == list(action.type)
        assert event["event.outcome"] == action.outcome
        assert event["log.level"] == action.level.lower()
        assert event["message"] == name

    def test_explicit_outcome_reason_and_fields(self) -> None:
        """Outcome and reason override the defaults; fields are added under their ECS names."""
        event = make_event("http_request", {"http.response.status_code": 404},
                           outcome="failure", reason="not found")
        assert event["event.outcome"] == "failure"
        assert event["event.reason"] == "not found"
        assert event["http.response.status_code"] == 404

    def test_lists_are_not_shared_with_the_vocabulary(self) -> None:
        """Changing an event's category list leaves the next event's alone."""
        make_event("authz_fail")["event.category"].append("web")
        assert make_event("authz_fail")["event.category"] == ["api"]

    def test_unknown_action_raises(self) -> None:
        """An action outside the vocabulary is an UnknownActionError."""
        with pytest.raises(UnknownActionError):
            make_event("authn_nonexistent")


class TestSequenceCounter:
    def test_numbers_from_start(self) -> None:
        """Numbers run 1, 2, 3 by default and from `start` when given; stamp() sets them."""
        counter = SequenceCounter()
        assert [counter.next() for _ in range(3)] == [1, 2, 3]
        assert SequenceCounter(start=41).stamp({})["apiwatch.seq"] == 41

    def test_gap_free_across_threads(self) -> None:
        """Eight threads drawing at once get every number exactly once."""
        counter = SequenceCounter()
        drawn: list[list[int]] = [[] for _ in range(8)]
        barrier = threading.Barrier(len(drawn))

        def draw(out: list[int]) -> None:
            barrier.wait()
            out.extend(counter.next() for _ in range(2000))

        threads = [threading.Thread(target=draw, args=(out,)) for out in drawn]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        numbers = sorted(n for out in drawn for n in out)
        assert numbers == list(range(1, 8 * 2000 + 1))
