"""Sigma correlation rules: the specification's examples, ranges, chains, refusals, and the
streaming counts against a brute-force recount."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apiwatch.detect import Alert, Engine
from apiwatch.detect.rules import TEST_EPOCH
from apiwatch.detect.sigma import SigmaRuleError
from apiwatch.detect.sigma_correlation import Condition, Correlation
from apiwatch.detect.sigma_load import parse_sigma_text
from apiwatch.events import format_timestamp

SPEC = "rules/sigma/sigma-correlation-rules-specification.md"


def _base(ref: str, event_id: int) -> str:
    """A Sigma rule named or identified `ref` matching `EventID: event_id`."""
    key = "id" if re.fullmatch(r"[0-9a-f-]{36}", ref) else "name"
    return (f"---\ntitle: base {ref}\n{key}: {ref}\nlogsource: {{product: windows}}\n"
            f"detection:\n  sel: {{EventID: {event_id}}}\n  condition: sel\n")


def _example(shared_data: Path, name: str, *bases: tuple[str, int]) -> str:
    text = (shared_data / "rules/sigma/examples" / name).read_text()
    return text + "\n" + "".join(_base(ref, eid) for ref, eid in bases)


def _run(text: str, events: list[tuple[float, dict[str, Any]]],
         advance: float | None = None) -> list[Alert]:
    """Alerts (new and folded repeats count apart) from events at seconds after TEST_EPOCH."""
    engine = Engine(parse_sigma_text(text, "spec"), lateness=0)
    out = []
    for i, (t, fields) in enumerate(events):
        stamp = format_timestamp(round((TEST_EPOCH + t) * 1e9))
        out += engine.process({"@timestamp": stamp, "event.id": f"e{i}", **fields})
    if advance is not None:
        out += engine.advance(TEST_EPOCH + advance)
    return out


class TestSpecExamples:
    def test_event_count_fires_at_100_failures_in_an_hour(self, shared_data: Path) -> None:
        """event_count: 100 matching events on one ComputerName within 1h fire once."""
        text = _example(shared_data, "event_count.yml",
                        ("5638f7c0-ac70-491d-8465-2a65075e0d86", 4625))
        events = [(i * 30.0, {"EventID": 4625, "ComputerName": "dc1"}) for i in range(100)]
        alerts = _run(text, events)
        assert len(alerts) == 1
        assert alerts[0].group == {"ComputerName": "dc1"}
        assert alerts[0].count == 100

    @pytest.mark.parametrize("events", [
        [(i * 30.0, {"EventID": 4625, "ComputerName": "dc1"}) for i in range(99)],
        [(i * 40.0, {"EventID": 4625, "ComputerName": "dc1"}) for i in range(100)],  # > 1h
        [(i * 30.0, {"EventID": 4625, "ComputerName": f"dc{i % 2}"}) for i in range(100)],
        [(i * 30.0, {"EventID": 4624, "ComputerName": "dc1"}) for i in range(100)],
    ])
    def test_event_count_stays_quiet(self, shared_data: Path,
                                     events: list[tuple[float, dict[str, Any]]]) -> None:
        """99 events, 100 spread over more than 1h, split over two hosts, or of another
        rule do not fire."""
        text = _example(shared_data, "event_count.yml",
                        ("5638f7c0-ac70-491d-8465-2a65075e0d86", 4625))
        assert _run(text, events) == []

    def test_value_count_fires_at_100_distinct_users(self, shared_data: Path) -> None:
        """value_count: 100 distinct User values per ComputerName and WorkstationName in a
        day fire; 99 users, however often, do not."""
        text = _example(shared_data, "value_count.yml",
                        ("5638f7c0-ac70-491d-8465-2a65075e0d86", 4625))
        host = {"EventID": 4625, "ComputerName": "dc1", "WorkstationName": "ws7"}
        hits = _run(text, [(i * 60.0, {**host, "User": f"u{i}"}) for i in range(100)])
        assert len(hits) == 1
        assert hits[0].group == {"ComputerName": "dc1",
                                                   "WorkstationName": "ws7"}
        assert _run(text, [(i * 60.0, {**host, "User": f"u{i % 99}"})
                           for i in range(300)]) == []

    @pytest.mark.parametrize(("order", "gap", "user2", "expected"), [
        ([3, 1, 2], 60.0, "bob", 1),  # any order within 5m
        ([1, 2], 60.0, "bob", 0),  # one rule missing
        ([1, 2, 3], 160.0, "bob", 0),  # 320 s from first to last: more than 5m
        ([1, 2, 3], 60.0, "eve", 0),  # the last one by another user
    ])
    def test_temporal(self, shared_data: Path, order: list[int], gap: float, user2: str,
                      expected: int) -> None:
        """temporal: the three recon rules on one ComputerName by one User within 5m, in
        any order."""
        text = _example(shared_data, "temporal.yml",
                        ("recon_cmd_a", 1), ("recon_cmd_b", 2), ("recon_cmd_c", 3))
        events = [(i * gap, {"EventID": eid, "ComputerName": "pc", "User": "bob"})
                  for i, eid in enumerate(order)]
        events[-1][1]["User"] = user2
        assert len(_run(text, events)) == expected

    @pytest.mark.parametrize(("order", "expected"), [
        ([1, 2, 3], 1), ([3, 2, 1], 0), ([1, 3, 2], 0), ([2, 1, 1, 3, 2, 3], 1)])
    def test_temporal_ordered(self, shared_data: Path, order: list[int], expected: int) -> None:
        """temporal_ordered: the recon rules must occur in the order listed."""
        text = _example(shared_data, "temporal_ordered.yml",
                        ("recon_cmd_a", 1), ("recon_cmd_b", 2), ("recon_cmd_c", 3))
        events = [(i * 10.0, {"EventID": eid, "ComputerName": "pc", "User": "bob"})
                  for i, eid in enumerate(order)]
        assert len(_run(text, events)) == expected

    def test_temporal_ordered_chain_must_fit_the_timespan(self, shared_data: Path) -> None:
        """A later start does not rescue a chain whose middle step came before it: a at 0,
        b at 200, a at 250, c at 301 is not a, b, c within 300 s."""
        text = _example(shared_data, "temporal_ordered.yml",
                        ("recon_cmd_a", 1), ("recon_cmd_b", 2), ("recon_cmd_c", 3))
        who = {"ComputerName": "pc", "User": "bob"}
        events = [(0.0, {"EventID": 1, **who}), (200.0, {"EventID": 2, **who}),
                  (250.0, {"EventID": 1, **who}), (301.0, {"EventID": 3, **who})]
        assert _run(text, events) == []

    def test_value_sum_is_strictly_greater(self, shared_data: Path) -> None:
        """value_sum: bytes_sent summing over 1,000,000 in 1h fires; exactly 1,000,000 does
        not (`gt`), nor the same bytes spread over 2h."""
        text = _example(shared_data, "value_sum.yml", ("website_access", 3))
        who = {"EventID": 3, "SourceIP": "10.1.1.1", "User": "bob"}
        assert len(_run(text, [(i * 60.0, {**who, "bytes_sent": 400_000})
                               for i in range(3)])) == 1
        assert _run(text, [(i * 60.0, {**who, "bytes_sent": 250_000})
                           for i in range(4)]) == []
        assert _run(text, [(i * 2400.0, {**who, "bytes_sent": 400_000})
                           for i in range(3)]) == []

    def test_value_avg_judges_the_whole_window(self, shared_data: Path) -> None:
        """value_avg: a day whose BytesOut average exceeds 500 fires when the day is over
        (at `advance`); a day averaging exactly 500 does not, even if it opened with 600."""
        text = _example(shared_data, "value_avg.yml", ("rule_a_id", 5))
        who = {"EventID": 5, "SourceIP": "10.1.1.1", "User": "bob"}
        high = [(i * 600.0, {**who, "BytesOut": 600 + i}) for i in range(10)]
        assert _run(text, high) == []  # the day is not over
        alerts = _run(text, high, advance=86_400.0)
        assert len(alerts) == 1
        assert "value_avg 604.5" in alerts[0].reason
        even = [(i * 600.0, {**who, "BytesOut": 600 if i % 2 == 0 else 400}) for i in range(10)]
        assert _run(text, even, advance=86_400.0) == []

    def test_value_percentile_is_refused(self, shared_data: Path) -> None:
        """value_percentile is refused naming the rule and the type."""
        text = _example(shared_data, "value_percentile.yml", ("process_creation", 1))
        with pytest.raises(SigmaRuleError, match=r"'A computer spawned.*unsupported: "
                                                 r"value_percentile"):
            parse_sigma_text(text, "spec")

    def test_failed_logins_followed_by_success(self, shared_data: Path) -> None:
        """The specification's complete example (a chain: temporal_ordered over an
        event_count) fires after 10 failures then a success of one user, and only its
        outermost correlation is output."""
        spec = (shared_data / SPEC).read_text()
        section = spec.split("### Failed Logins Followed by Successful Login")[1]
        text = section.split("```yml\n")[1].split("```")[0]
        rules = parse_sigma_text(text, "spec")
        assert [r.title for r in rules] == [
            "Correlation - Multiple Failed Logins Followed by Successful Login"]
        fails = [(i * 10.0, {"EventID": 4625, "User": "alice"}) for i in range(10)]
        success = [(120.0, {"EventID": 4624, "User": "alice"})]
        alerts = _run(text, fails + success)
        assert len(alerts) == 1
        assert alerts[0].group == {"User": "alice"}
        assert _run(text, fails[1:] + success) == []  # 9 failures
        assert _run(text, success + fails) == []  # success first


ONE_RULE = _base("hit", 7)


def _corr(body: str) -> str:
    return f"title: Corr\nname: corr\ncorrelation:\n{body}\n" + ONE_RULE


class TestConditions:
    def test_a_range_is_judged_on_whole_windows(self) -> None:
        """`gt: 2, lte: 4` fires for a window of 3 or 4 events, not 2 nor 5, when the
        window ends (at the group's next event or at `advance`)."""
        text = _corr("  type: event_count\n  rules: [hit]\n  group-by: [User]\n"
                     "  timespan: 1m\n  condition: {gt: 2, lte: 4}")
        for n, expected in ((2, 0), (3, 1), (4, 1), (5, 0)):
            events = [(i * 5.0, {"EventID": 7, "User": "u"}) for i in range(n)]
            assert len(_run(text, events, advance=600.0)) == expected, n
        # Judged at the next event after the window, too.
        events = [(i * 5.0, {"EventID": 7, "User": "u"}) for i in range(3)]
        assert len(_run(text, [*events, (100.0, {"EventID": 7, "User": "u"})])) == 1

    def test_lt_counts_quiet_groups(self) -> None:
        """`lt: 3`: a window with fewer than three events fires once it is over."""
        text = _corr("  type: event_count\n  rules: [hit]\n  group-by: [User]\n"
                     "  timespan: 1m\n  condition: {lt: 3}")
        assert len(_run(text, [(0.0, {"EventID": 7, "User": "u"})], advance=60.0)) == 1
        assert _run(text, [(0.0, {"EventID": 7, "User": "u"})], advance=59.0) == []

    @pytest.mark.parametrize(("body", "feature"), [
        ("  type: temporal\n  rules: [hit]\n  group-by: [User]\n  timespan: 1m\n"
         "  condition: 'hit and not hit'", "extended (string) condition"),
        ("  type: temporal_ordered\n  rules: [hit]\n  group-by: [User]\n  timespan: 1m\n"
         "  condition: {gte: 1}", "a condition on temporal_ordered"),
        ("  type: value_count\n  rules: [hit]\n  group-by: [User]\n  timespan: 1m\n"
         "  condition: {field: [a, b], gte: 2}", "several fields"),
        ("  type: event_count\n  rules: [nowhere]\n  group-by: [User]\n  timespan: 1m\n"
         "  condition: {gte: 2}", "'nowhere', not found"),
    ])
    def test_unsupported_correlations_are_refused(self, body: str, feature: str) -> None:
        """Extended conditions, a condition on temporal_ordered, value_count over
        several fields and unknown references are refused naming the rule and the feature."""
        with pytest.raises(SigmaRuleError) as info:
            parse_sigma_text(_corr(body), "c.yml")
        assert "c.yml" in str(info.value)
        assert "'Corr'" in str(info.value)
        assert feature in str(info.value)

    def test_a_chain_over_a_whole_window_correlation_is_refused(self) -> None:
        """A correlation may not reference one judged on whole windows (a range)."""
        text = ("title: Outer\ncorrelation:\n  type: event_count\n  rules: [corr]\n"
                "  group-by: [User]\n  timespan: 1h\n  condition: {gte: 2}\n---\n"
                + _corr("  type: event_count\n  rules: [hit]\n  group-by: [User]\n"
                        "  timespan: 1m\n  condition: {gte: 1, lt: 5}"))
        with pytest.raises(SigmaRuleError, match=r"'Outer'.*whole windows"):
            parse_sigma_text(text)


def _brute_force(times: list[float], k: int, span: float) -> list[int]:
    """The indexes of the events at which "k events within span" fires, starting over after
    each firing, by recounting every kept event each time."""
    kept: list[float] = []
    fired = []
    for i, t in enumerate(times):
        kept.append(t)
        if sum(1 for x in kept if x >= t - span) >= k:
            fired.append(i)
            kept = []
    return fired


@settings(max_examples=150, deadline=None)
@given(gaps=st.lists(st.integers(0, 40), min_size=1, max_size=60),
       k=st.integers(1, 6), span=st.integers(1, 90))
def test_streaming_event_count_equals_a_recount(gaps: list[int], k: int, span: int) -> None:
    """The streaming event_count (apiwatch's own evaluator and the engine's Count window a
    simple Sigma event_count becomes) fires at exactly the events a brute-force recount
    does."""
    times = [float(sum(gaps[:i + 1])) for i in range(len(gaps))]
    expected = _brute_force(times, k, span)
    corr = Correlation(title="t", kind="event_count", refs=[lambda e: True], group_by=[],
                       seconds=float(span), cond=Condition((("gte", float(k)),)))
    state = corr.new()
    own = [i for i, t in enumerate(times) if corr.step(state, t, {}, [True]) is not None]
    assert own == expected
    text = _corr(f"  type: event_count\n  rules: [hit]\n  group-by: [User]\n"
                 f"  timespan: {span}s\n  condition: {{gte: {k}}}")
    engine = Engine(parse_sigma_text(text), lateness=0)
    for t in times:
        engine.process({"@timestamp": format_timestamp(round((TEST_EPOCH + t) * 1e9)),
                        "EventID": 7, "User": "u"})
    stats = engine.stats.rules["corr"]
    assert stats.alerts + stats.suppressed == len(expected)
