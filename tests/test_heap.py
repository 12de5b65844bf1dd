"""The C heap settings of apiwatch's own processes."""

from __future__ import annotations

import platform

import pytest

from apiwatch.heap import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_settings() -> None:
    """On glibc (Debian, the collector's platform) every mallopt call is accepted; a value it
    refused (out of range) would make this False and the page-fault cost would come back."""
    assert keep_freed_memory() is True
