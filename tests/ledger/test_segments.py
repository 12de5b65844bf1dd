"""Append-only segment files: lines, rolling by size, O(1) reads through the offsets index."""

from __future__ import annotations

from pathlib import Path

import pytest

from apiwatch.ledger.errors import LedgerError
from apiwatch.ledger.segments import RecordError, SegmentStore, list_segments


def _records(n: int, start: int = 0) -> list[bytes]:
    return [b"record-%04d" % i for i in range(start, start + n)]  # 11 bytes, 12 with newline


def test_batch_returns_first_index_and_reads_back(tmp_path: Path) -> None:
    """append_batch returns the first new index; read and read_range return the exact bytes."""
    store = SegmentStore(tmp_path)
    assert store.append_batch(_records(5)) == 0
    assert store.append_batch(_records(3, 5)) == 5
    assert store.size == 8
    assert store.read(6) == b"record-0006"
    assert store.read_range(2, 8) == _records(6, 2)
    assert store.read_range(3, 3) == []
    store.close()


def test_record_with_newline_is_refused_and_nothing_written(tmp_path: Path) -> None:
    """A record containing a newline is refused with its position; the batch is not written."""
    store = SegmentStore(tmp_path)
    with pytest.raises(RecordError, match="record 1 of the batch contains a newline"):
        store.append_batch([b"ok", b"bad\nline"])
    assert store.size == 0
    store.close()


def test_segments_roll_by_size_and_reads_span_them(tmp_path: Path) -> None:
    """With a 50-byte roll size every segment holds 4 records and reads cross segment files."""
    store = SegmentStore(tmp_path, roll_size=50)
    store.append_batch(_records(10))
    store.append_batch(_records(3, 10))
    assert [s.first for s in list_segments(tmp_path)] == [0, 4, 8, 12]
    assert store.read(9) == b"record-0009"
    assert store.read_range(1, 13) == _records(12, 1)
    store.close()


def test_oversized_record_gets_a_segment_of_its_own(tmp_path: Path) -> None:
    """A record larger than the roll size is still stored, alone in its segment."""
    store = SegmentStore(tmp_path, roll_size=20)
    store.append_batch([b"a", b"x" * 100, b"b"])
    assert [s.first for s in list_segments(tmp_path)] == [0, 1, 2]
    assert store.read(1) == b"x" * 100
    store.close()


def test_reopen_continues_where_it_stopped(tmp_path: Path) -> None:
    """A store reopened on the same directory sees every record and appends after them."""
    store = SegmentStore(tmp_path, roll_size=50, durable=False)
    store.append_batch(_records(6))
    store.close()
    again = SegmentStore(tmp_path, roll_size=50)
    assert again.append_batch(_records(2, 6)) == 6
    assert again.read_range(0, 8) == _records(8)
    again.close()


def test_index_holds_one_end_offset_per_record(tmp_path: Path) -> None:
    """The offsets index is 8 bytes per record, the log exactly the records and newlines."""
    store = SegmentStore(tmp_path)
    store.append_batch(_records(7))
    store.close()
    (segment,) = list_segments(tmp_path)
    assert segment.idx.stat().st_size == 7 * 8
    assert segment.log.read_bytes() == b"".join(r + b"\n" for r in _records(7))


def test_out_of_range_reads_raise(tmp_path: Path) -> None:
    """Reading past the end is a LedgerError, not garbage."""
    store = SegmentStore(tmp_path)
    store.append_batch(_records(2))
    with pytest.raises(LedgerError, match="outside"):
        store.read(2)
    store.close()
