"""A full disk under the ledger (a real tmpfs): the failed batch leaves no trace, the ledger
stays verifiable, and appends resume once there is room."""

from __future__ import annotations

from typing import Any

import pytest

from apiwatch.ledger.errors import StorageError
from apiwatch.ledger.log import Ledger
from apiwatch.ledger.verify import verify_ledger


def _batch(start: int, count: int) -> list[bytes]:
    return [b'{"n":%d,"pad":"%s"}' % (i, b"x" * 200) for i in range(start, start + count)]


@pytest.mark.parametrize("roll_size", [1 << 20, 4096])  # also: a batch that rolls segments
def test_a_batch_refused_by_a_full_disk_is_cut_off_entirely(
    small_disk: Any, roll_size: int
) -> None:
    """StorageError, the size unchanged, no partial record on disk; after room is made the
    next batch gets the next index and `apiwatch verify` finds nothing wrong."""
    directory = small_disk.path / "ledger"
    ledger = Ledger.create(directory, "apiwatch/test", "k", roll_size=roll_size)
    try:
        ledger.append_batch(_batch(0, 100))
        ledger.checkpoint()
        filler = small_disk.fill()
        with pytest.raises(StorageError, match="No space left"):
            ledger.append_batch(_batch(100, 200))
        assert ledger.size == 100
        filler.unlink()
        assert ledger.append_batch(_batch(100, 50)) == 100
        assert ledger.read(149) == _batch(149, 1)[0]
        ledger.checkpoint()
    finally:
        ledger.close()
    result = verify_ledger(directory)
    assert result.ok, result.findings
    assert result.size == 150
