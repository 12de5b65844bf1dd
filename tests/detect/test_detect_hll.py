"""HyperLogLog estimates and the distinct window's switch from exact sets to sketches."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from apiwatch.detect import HyperLogLog
from apiwatch.detect.windows import Distinct


@settings(max_examples=25, deadline=None)
@given(n=st.integers(min_value=1, max_value=30_000), salt=st.text(max_size=8))
def test_estimate_within_error_bound(n: int, salt: str) -> None:
    """The estimate is within 4 standard errors (1.04/sqrt(m) relative) of the true count."""
    hll = HyperLogLog()
    for i in range(n):
        hll.add(f"{salt}-{i}")
    bound = max(4 * hll.relative_error * n, 2.0)
    assert abs(hll.estimate() - n) <= bound


@given(values=st.lists(st.text(max_size=6), max_size=200))
def test_duplicates_do_not_move_the_estimate(values: list[str]) -> None:
    """Adding every value twice leaves the registers, hence the estimate, unchanged."""
    once, twice = HyperLogLog(), HyperLogLog()
    for v in values:
        once.add(v)
        twice.add(v)
        twice.add(v)
    assert once.estimate() == twice.estimate()


def test_distinct_window_switches_to_sketch_and_still_fires() -> None:
    """Past its exact limit a distinct window counts with HyperLogLog and fires near the
    threshold."""
    window = Distinct([(("user.name",), 5000)], seconds=600, exact_limit=100)
    state = window.new()
    fired_at = None
    for i in range(6000):
        if window.add(state, 1000.0 + i * 0.01, {"user.name": f"u{i}"}) is not None:
            fired_at = i + 1
            break
    assert fired_at is not None
    assert abs(fired_at - 5000) <= 5000 * 0.07
