"""RFC 6587 TCP framing: octet counting, newline framing, limits and garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apiwatch.formats.syslog_parse import Deframer, FramingError

MSG = b"<34>1 2003-10-11T22:14:15.003Z host su - ID47 - hi\nthere"


def _frame(message: bytes) -> bytes:
    return str(len(message)).encode() + b" " + message


class TestFraming:
    def test_octet_counted_frames_keep_embedded_newlines(self) -> None:
        """Octet counting (section 3.4.1) returns messages byte for byte, newlines included."""
        d = Deframer()
        assert d.feed(_frame(MSG) + _frame(b"<1>x")) == [MSG, b"<1>x"]

    def test_frames_split_across_chunks_are_reassembled(self) -> None:
        """Feeding one byte at a time gives the same messages as one chunk."""
        stream = _frame(MSG) + b"<13>Jan  1 00:00:00 h a: b\r\n" + _frame(b"<1>y")
        d = Deframer()
        out = [m for i in range(len(stream)) for m in d.feed(stream[i : i + 1])]
        assert out == [MSG, b"<13>Jan  1 00:00:00 h a: b", b"<1>y"]
        assert d.close() == []

    def test_newline_framing_and_trailing_message_at_close(self) -> None:
        """Non-transparent frames end at LF or NUL; an unterminated last one is given at close."""
        d = Deframer()
        assert d.feed(b"<1>a\n\n<2>b\x00<3>c") == [b"<1>a", b"<2>b"]
        assert d.close() == [b"<3>c"]

    def test_oversized_octet_count_is_refused_before_buffering(self) -> None:
        """A MSG-LEN above max_size raises FramingError at once."""
        d = Deframer(max_size=100)
        with pytest.raises(FramingError, match="exceeds 100"):
            d.feed(b"101 ")
        with pytest.raises(FramingError):  # the stream stays broken
            d.feed(b"<1>x\n")

    def test_oversized_newline_frame_is_refused(self) -> None:
        """A newline frame growing past max_size raises FramingError."""
        d = Deframer(max_size=10)
        with pytest.raises(FramingError, match="exceeds 10"):
            d.feed(b"<1>" + b"x" * 20)

    def test_garbage_first_byte_is_a_clear_error(self) -> None:
        """A frame starting with neither a digit nor `<` names the offending byte."""
        d = Deframer()
        d.feed(b"<1>ok\n")
        with pytest.raises(FramingError, match=r"byte 6, got b'G'"):
            d.feed(b"GET / HTTP/1.1\r\n")

    def test_stream_ending_inside_a_counted_frame_is_an_error(self) -> None:
        """close() raises if an octet-counted frame was cut short."""
        d = Deframer()
        d.feed(b"10 <1>abc")
        with pytest.raises(FramingError, match="ended inside a frame"):
            d.close()


@given(st.lists(st.binary(max_size=40), max_size=20), st.integers(min_value=1, max_value=64))
def test_arbitrary_bytes_only_raise_framing_errors(chunks: list[bytes], max_size: int) -> None:
    """On any byte chunks the Deframer returns messages of at most max_size or raises
    FramingError, nothing else."""
    d = Deframer(max_size=max_size)
    try:
        for chunk in chunks:
            assert all(len(m) <= max_size for m in d.feed(chunk))
        assert all(len(m) <= max_size for m in d.close())
    except FramingError:
        pass


@given(st.lists(st.binary(min_size=1, max_size=50).map(lambda b: b"<" + b), max_size=10),
       st.integers(min_value=1, max_value=7))
def test_octet_counted_stream_round_trips_in_any_chunking(messages: list[bytes], step: int) -> None:
    """Octet-counted messages come back unchanged however the stream is cut."""
    stream = b"".join(_frame(m) for m in messages)
    d = Deframer()
    out = [m for i in range(0, len(stream), step) for m in d.feed(stream[i : i + step])]
    assert out == messages
