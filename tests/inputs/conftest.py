"""Fixtures of the input tests: an open data directory and a syslog receiver on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from inputs_support import make_config

from apiwatch.collector.runtime import Collector
from apiwatch.collector.syslog_server import SyslogService
from apiwatch.config import SyslogConfig


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    """An open data directory in a temporary folder."""
    opened = Collector.open(make_config(tmp_path / "data"))
    yield opened
    opened.close()


@pytest.fixture
def syslog_service(collector: Collector) -> Iterator[SyslogService]:
    """A syslog receiver (TCP and UDP on free ports of 127.0.0.1) storing as `syslog`."""
    service = SyslogService(
        collector.pipeline,
        SyslogConfig(tcp="127.0.0.1:0", udp="127.0.0.1:0", max_message_bytes=8192),
    )
    service.start()
    yield service
    service.stop()

