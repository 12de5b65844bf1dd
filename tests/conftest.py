"""Shared fixtures: the third-party data folder beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only third-party data (`../shared/data`); its absence is a failure, not a skip."""
    assert SHARED_DATA.is_dir(), f"missing third-party data at {SHARED_DATA}"
    return SHARED_DATA
