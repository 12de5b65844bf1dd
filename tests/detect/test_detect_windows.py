"""Windows kept per group: what a first-seen history and an absence remember between events,
and the last few event times a count or a sequence keeps."""

from __future__ import annotations

from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from apiwatch.detect.filters import compile_filter
from apiwatch.detect.history import Absence, FirstSeen
from apiwatch.detect.windows import Count, Distinct, Ordered, Step, _SequenceState

#: A field's value as events carry it: absent, a string, a number, or a list of either.
VALUE = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 3),
                  st.lists(st.sampled_from(["a", "b", 1]), max_size=3))
#: Events of a group: seconds after the previous one, and whether it is a failure.
TRAFFIC = st.lists(st.tuples(st.floats(0, 30), st.booleans()), max_size=300)


@given(st.integers(1, 64), st.floats(1, 600), st.sampled_from([0.0, 5.0]), TRAFFIC)
def test_a_count_fires_as_over_a_deque_of_its_threshold(
    threshold: int, seconds: float, min_gap: float, traffic: list[tuple[float, bool]]
) -> None:
    """A short window keeps its times in a list (a tenth of a deque's memory per group), a
    long one in a deque: either way the count fires at the events where a deque of the last
    `threshold` times (the window's first form) makes it fire."""
    window = Count(threshold, seconds, min_gap)
    state, reference = window.new(), deque[float](maxlen=threshold)
    ts = 0.0
    for gap, _ in traffic:
        ts += gap
        assert window.add(state, ts, {}) == window.add(reference, ts, {})
        assert list(state) == list(reference)


@given(st.integers(1, 40), TRAFFIC)
def test_a_sequence_follows_as_over_a_deque_of_its_first_step(
    first: int, traffic: list[tuple[float, bool]]
) -> None:
    """"`first` failures then a success": the same alerts at the same events whether the first
    step's times are kept in the window's own form or in a deque of `first` (its first form)."""
    failure = compile_filter({"event.outcome": "failure"})
    success = compile_filter({"event.outcome": "success"})
    window = Ordered([Step(failure, first, "failure"), Step(success, 1, "success")], 300)
    state, reference = window.new(), _SequenceState(deque(maxlen=first))
    ts = 0.0
    for gap, failed in traffic:
        ts += gap
        event = {"event.outcome": "failure" if failed else "success"}
        assert window.add(state, ts, event) == window.add(reference, ts, event)
        assert list(state.firsts) == list(reference.firsts)


def test_first_seen_fires_once_per_new_value_and_remembers_old_ones() -> None:
    """Once learned, a value never seen fires, once; values the group switches back and forth
    between do not."""
    window = FirstSeen(("source.ip",), learn_events=2, learn_seconds=0, forget=3600)
    state = window.new()

    def add(ts: float, ip: str) -> str | None:
        return window.add(state, ts, {"source.ip": ip})

    assert [add(t, "10.0.0.1") for t in (0, 1, 2)] == [None] * 3
    assert add(3, "10.0.0.2") is not None
    assert [add(t, ip) for t, ip in ((4, "10.0.0.1"), (5, "10.0.0.2"), (6, "10.0.0.1"),
                                     (7, "10.0.0.1"))] == [None] * 4
    assert add(8, "10.0.0.3") is not None
    assert [add(9, "10.0.0.2"), add(10, "10.0.0.3"), add(11, "10.0.0.1")] == [None] * 3


def test_first_seen_forgets_a_value_not_seen_for_longer_than_forget() -> None:
    """A value last seen more than `forget` ago is new again (the history decays), whether or
    not another value came in between; one seen within `forget` is still known."""
    window = FirstSeen(("source.ip",), learn_events=2, learn_seconds=0, forget=100)
    state = window.new()

    def add(ts: float, ip: str) -> str | None:
        return window.add(state, ts, {"source.ip": ip})

    assert [add(t, "10.0.0.1") for t in (0, 1, 2)] == [None] * 3
    assert add(50, "10.0.0.1") is None  # within `forget` of its last sight
    assert add(200, "10.0.0.1") is not None  # 150 s unseen: forgotten, so new
    assert add(210, "10.0.0.2") is not None
    assert add(250, "10.0.0.1") is None
    assert add(400, "10.0.0.2") is not None  # forgotten although 10.0.0.1 came between


def test_absence_learns_the_usual_gap_from_events_in_order() -> None:
    """An absence's usual gap follows the events' spacing; a late event does not move the
    group's last time back."""
    window = Absence(factor=3, min_silence=10, min_events=3, forget=3600)
    state = window.new()
    for ts in (0.0, 10.0, 20.0, 30.0, 25.0):
        assert window.add(state, ts, {}) is None
    assert state.last == 30.0
    assert window.silent(state, 55.0) is None  # 25 s quiet: under 3 x 10 s
    assert window.silent(state, 61.0) is not None


def _distinct_model(
    thresholds: tuple[int, int], seconds: float, events: list[tuple[float, dict[str, object]]]
) -> list[bool]:
    """Whether a two-field distinct window fires at each event, by its definition: each
    field's values (a list's elements, a scalar as text) with the time each was last seen,
    those older than `seconds` dropped when a value comes; a field the event lacks counts
    what is held; all counts at their thresholds fire and start over."""
    names = ("source.ip", "user.name")
    seen: list[dict[str, float]] = [{}, {}]
    fired = []
    for ts, event in events:
        counts = []
        for name, held in zip(names, seen, strict=True):
            value = event.get(name)
            items = [] if value is None else value if isinstance(value, list) else [value]
            for item in map(str, items):
                held.pop(item, None)
                held[item] = ts
                for old in [v for v, t in held.items() if t < ts - seconds]:
                    del held[old]
            counts.append(len(held))
        hit = all(c >= t for c, t in zip(counts, thresholds, strict=True))
        if hit:
            seen = [{}, {}]
        fired.append(hit)
    return fired


@given(st.tuples(st.integers(1, 4), st.integers(1, 4)), st.floats(10, 100),
       st.lists(st.tuples(st.floats(0, 30), VALUE, VALUE), max_size=200))
def test_a_distinct_window_over_two_fields_counts_by_its_definition(
    thresholds: tuple[int, int], seconds: float, traffic: list[tuple[float, object, object]]
) -> None:
    """Distinct addresses and user names together (as distributed credential stuffing
    counts them): strings, numbers, lists and absent fields each counted as defined."""
    window = Distinct([(("source.ip",), thresholds[0]), (("user.name",), thresholds[1])],
                      seconds)
    state = window.new()
    events: list[tuple[float, dict[str, object]]] = []
    ts = 0.0
    for gap, ip, user in traffic:
        ts += gap
        events.append((ts, {k: v for k, v in (("source.ip", ip), ("user.name", user))
                            if v is not None}))
    fired = [window.add(state, at, event) is not None for at, event in events]
    assert fired == _distinct_model(thresholds, seconds, events)
