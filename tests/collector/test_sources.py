"""Sequence tracking: duplicates out, gaps remembered, late events let in."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from apiwatch.collector.sources import SourceTracker


def batch(*seqs: int) -> list[dict[str, Any]]:
    return [{"apiwatch.seq": s} for s in seqs]


def admit(tracker: SourceTracker, *seqs: int) -> tuple[list[int], int, list[tuple[int, int]]]:
    admission = tracker.admit("api", batch(*seqs))
    tracker.commit(admission, 1_000_000_000)
    return [e["apiwatch.seq"] for e in admission.new], admission.duplicates, admission.gaps


def test_retried_batch_adds_nothing() -> None:
    """A batch sent twice is new the first time and all duplicates the second."""
    tracker = SourceTracker()
    assert admit(tracker, 1, 2, 3) == ([1, 2, 3], 0, [])
    assert admit(tracker, 1, 2, 3) == ([], 3, [])


def test_gap_is_reported_once_and_late_events_fill_it() -> None:
    """A jump opens a gap; the missing events are still accepted once, later."""
    tracker = SourceTracker()
    assert admit(tracker, 1, 2, 6) == ([1, 2, 6], 0, [(3, 5)])
    assert admit(tracker, 4) == ([4], 0, [])
    assert admit(tracker, 4) == ([], 1, [])
    assert tracker.states["api"].missing == {3, 5}


def test_uncommitted_admission_changes_nothing() -> None:
    """If the ledger append fails, a retry of the batch is judged exactly the same way."""
    tracker = SourceTracker()
    first = tracker.admit("api", batch(1, 2))
    second = tracker.admit("api", batch(1, 2))
    assert [e["apiwatch.seq"] for e in second.new] == [e["apiwatch.seq"] for e in first.new]


def test_events_without_sequence_are_always_new() -> None:
    """Syslog lines and file imports carry no sequence; nothing is deduplicated for them."""
    tracker = SourceTracker()
    admission = tracker.admit("syslog", [{"message": "a"}, {"message": "a"}])
    assert len(admission.new) == 2


def test_state_round_trips_through_json() -> None:
    """The snapshot written beside the ledger rebuilds the same verdicts."""
    tracker = SourceTracker()
    admit(tracker, 1, 2, 5)
    again = SourceTracker.from_json(tracker.to_json())
    assert admit(again, 3, 5, 6) == ([3, 6], 1, [])


@given(st.lists(st.lists(st.integers(min_value=1, max_value=60), max_size=20), max_size=12))
def test_every_sequence_number_is_accepted_exactly_once(batches: list[list[int]]) -> None:
    """Whatever the order and repetition of batches, each number is new exactly once."""
    tracker = SourceTracker()
    accepted: list[int] = []
    for seqs in batches:
        accepted.extend(admit(tracker, *seqs)[0])
    assert sorted(accepted) == sorted({s for seqs in batches for s in seqs})


def test_a_boolean_is_no_sequence_number() -> None:
    """`true` equals 1 in Python but numbers nothing: it neither takes nor repeats 1."""
    tracker = SourceTracker()
    for _ in range(2):
        admission = tracker.admit("api", [{"apiwatch.seq": True}])
        tracker.commit(admission, 1_000_000_000)
        assert (len(admission.new), admission.high) == (1, 0)
    assert admit(tracker, 1) == ([1], 0, [])

