"""The C count of JSON key ends (`formats/_json_bytes.c`) that the pipeline compares with
its events' keys: the same number as `bytes.count(b'":')`, for any bytes."""

from __future__ import annotations

import operator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from apiwatch.collector import pipeline

_PIECES = st.one_of(
    st.binary(max_size=10),
    st.lists(st.sampled_from(b'":{}[],ab \\'), max_size=20).map(bytes),
    st.sampled_from([b'{"a":1,"b":":x"}', b'"::"', b'\n"a":']),
)


def test_the_c_count_is_built() -> None:
    """The README's install builds it here; without it `bytes.count` compares every byte."""
    assert not isinstance(pipeline._key_ends, operator.methodcaller)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_PIECES, max_size=30).map(b"".join))
@example(b"")
@example(b":")
@example(b'":')
@example(b'""::')
def test_key_ends_is_the_count_of_quote_colon(data: bytes) -> None:
    assert pipeline._key_ends(data) == data.count(b'":')


def test_only_bytes_are_counted() -> None:
    if isinstance(pipeline._key_ends, operator.methodcaller):
        pytest.skip("built without a C compiler")
    with pytest.raises(TypeError):
        pipeline._key_ends(bytearray(b'":'))  # type: ignore[arg-type]
