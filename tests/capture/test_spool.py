"""The spool keeps events on disk until the collector has them, and survives crashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from apiwatch.capture.spool import REJECTED_DIR, Spool, SpoolFull


def lines(*names: str) -> list[bytes]:
    return [b'{"message":"%s"}' % n.encode() for n in names]


def test_segments_roll_by_count_and_ship_in_order(tmp_path: Path) -> None:
    """Full segments become ready oldest first; the partial one waits for a roll."""
    spool = Spool(tmp_path, segment_events=2)
    spool.append(lines("a", "b"))
    spool.append(lines("c"))
    ready = spool.ready()
    assert [p.read_bytes().count(b"\n") for p in ready] == [2]
    spool.roll()
    assert [p.read_bytes() for p in spool.ready()][1] == b'{"message":"c"}\n'


def test_acknowledged_segment_is_deleted_and_frees_space(tmp_path: Path) -> None:
    """Only an acknowledgement removes a segment and gives its bytes back to the cap."""
    spool = Spool(tmp_path, segment_events=1)
    spool.append(lines("a"))
    used = spool.size_bytes
    assert used > 0
    spool.acknowledge(spool.ready()[0])
    assert spool.size_bytes == 0
    assert spool.ready() == []


def test_cap_refuses_a_batch_without_writing_any_of_it(tmp_path: Path) -> None:
    """Past the disk cap a batch is refused whole, so the caller can count the drop."""
    spool = Spool(tmp_path, max_bytes=40, segment_events=100)
    spool.append(lines("a"))
    with pytest.raises(SpoolFull):
        spool.append(lines("b", "c"))
    spool.roll()
    assert b"".join(p.read_bytes() for p in spool.ready()) == b'{"message":"a"}\n'


def test_torn_last_line_is_cut_on_reopen_and_the_rest_kept(tmp_path: Path) -> None:
    """A process killed mid-write leaves a partial line; reopening cuts it and counts the bytes."""
    spool = Spool(tmp_path, segment_events=100)
    spool.append(lines("a", "b"))
    active = next(tmp_path.glob("*.active"))
    with active.open("ab") as fh:
        fh.write(b'{"message":"tor')
    reopened = Spool(tmp_path)
    assert reopened.stats.torn_bytes_cut == len(b'{"message":"tor')
    (segment,) = reopened.ready()
    assert segment.read_bytes() == b'{"message":"a"}\n{"message":"b"}\n'


def test_new_segments_sort_after_recovered_ones(tmp_path: Path) -> None:
    """After a restart, new segments are numbered after the old ones so order is kept."""
    first = Spool(tmp_path, segment_events=1)
    first.append(lines("old"))
    second = Spool(tmp_path, segment_events=1)
    second.append(lines("new"))
    assert [p.read_bytes() for p in second.ready()] == [
        b'{"message":"old"}\n',
        b'{"message":"new"}\n',
    ]


def test_quarantine_keeps_refused_segments(tmp_path: Path) -> None:
    """A segment the collector refuses for good is moved aside, never deleted."""
    spool = Spool(tmp_path, segment_events=1)
    spool.append(lines("bad"))
    target = spool.quarantine(spool.ready()[0])
    assert target.parent.name == REJECTED_DIR
    assert target.read_bytes() == b'{"message":"bad"}\n'
    assert spool.stats.quarantined_segments == 1


def test_writer_and_shipper_in_two_processes_share_the_directory(tmp_path: Path) -> None:
    """The shipper's process may roll the segment another process is writing: the writer then
    starts a new segment, nothing is overwritten, and the writer counts the space the shipper's
    acknowledgements freed before it refuses anything."""
    writer = Spool(tmp_path, max_bytes=60)
    shipper = Spool(tmp_path, max_bytes=60)  # the same directory, as seen by the other process
    writer.append(lines("a"))
    shipper.roll()
    writer.append(lines("b"))
    shipper.roll()
    ready = shipper.ready()
    assert [p.read_bytes() for p in ready] == [b'{"message":"a"}\n', b'{"message":"b"}\n']
    with pytest.raises(SpoolFull):
        writer.append(lines("cccccccccccccccccccccccccccccccc"))
    for path in ready:
        shipper.acknowledge(path)
    writer.append(lines("cccccccccccccccccccccccccccccccc"))  # room again, read from the disk
    assert writer.size_bytes == 47
