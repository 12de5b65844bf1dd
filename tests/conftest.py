"""Shared fixtures: the third-party data folder beside the repository, a disk that fills up."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only third-party data (`../shared/data`); its absence is a failure, not a skip."""
    assert SHARED_DATA.is_dir(), f"missing third-party data at {SHARED_DATA}"
    return SHARED_DATA


class SmallDisk:
    """A real 4 MiB tmpfs mounted for one test: writes past its size fail with ENOSPC."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self) -> Path:
        """Write a file until the disk is full; the file (delete it to make room)."""
        filler = self.path / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            block = b"\0" * 65536
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    if len(block) == 1:
                        return filler
                    block = block[: len(block) // 2]
        finally:
            os.close(fd)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A `SmallDisk` (mounting needs root, as on this project's machines; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
