"""Event times as the index store keeps them (`store/_time.py`): the C reading of the
collector's own form (`_hot_columns.micros`) gives what `datetime.fromisoformat` gives, and
leaves every other form to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from apiwatch.store import _time
from apiwatch.store._time import event_micros, events_micros, to_micros

_NATIVE = pytest.mark.skipif(_time._native_micros is None, reason="built without a C compiler")
_MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999),
    timezones=st.just(UTC),
)
_CANONICAL = _MOMENTS.map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
#: The form, some of its places changed: out-of-range fields, other separators, other digits.
_EDITED = st.builds(
    lambda text, at, byte: text[:at] + byte + text[at + 1 :],
    st.sampled_from(["2024-02-29T23:59:59.999999Z", "2026-11-29T05:05:35.532092Z"]),
    st.integers(0, 26),
    st.sampled_from(list("0123456789-T:.Z t+x٣")),
)


def reference(text: str) -> int | None:
    try:
        return event_micros(text)
    except ValueError:
        return None


@_NATIVE
@settings(max_examples=1000, deadline=None)
@given(st.lists(st.one_of(_CANONICAL, _EDITED, st.text(max_size=30)), max_size=20))
@example(["0000-01-01T00:00:00.000000Z", "1900-02-29T00:00:00.000000Z"])  # no year 0; 1900: 28
@example(["2000-02-29T00:00:00.000000Z", "2026-11-29T24:00:00.000000Z"])
@example(["2026-11-29T23:60:00.000000Z", "2026-11-29T23:59:60.000000Z"])
def test_the_c_reading_agrees_with_fromisoformat(texts: list[str]) -> None:
    assert _time._native_micros is not None
    for text, value in zip(texts, _time._native_micros(texts), strict=True):
        if value is not None:
            assert value == reference(text)
    if all(reference(text) is not None for text in texts):
        assert events_micros(texts) == [event_micros(text) for text in texts]


@_NATIVE
def test_the_collectors_form_is_read_in_c() -> None:
    """Every timestamp the collector writes takes the C path, before the epoch too."""
    assert _time._native_micros is not None
    moments = [datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC), datetime.now(UTC)]
    texts = [m.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for m in moments]
    assert _time._native_micros(texts) == [to_micros(m) for m in moments]


def test_other_forms_and_bad_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """An offset, fewer fraction digits: `event_micros` decides; a bad time raises, with or
    without the C module."""
    texts = ["2026-11-29T06:05:35.5+01:00", "2026-11-29T05:05:35Z"]
    moment = datetime(2026, 11, 29, 5, 5, 35, tzinfo=UTC)
    expected = [to_micros(moment + timedelta(microseconds=500000)), to_micros(moment)]
    assert events_micros(texts) == expected
    with pytest.raises(ValueError):
        events_micros(["2026-02-30T00:00:00.000000Z"])
    monkeypatch.setattr(_time, "_native_micros", None)
    assert events_micros(texts) == expected
    with pytest.raises(ValueError):
        events_micros(["2026-02-30T00:00:00.000000Z"])
