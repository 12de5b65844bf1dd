"""Fixtures of the dashboard tests: a collector with detection (the catalogue plus a user rule
whose title is hostile markup), one user per role, a service read token, and the collector's
app (API and dashboard) served by uvicorn on 127.0.0.1 in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from dashboard_support import HOSTILE_RULE, PASSWORD, ROLES, SERVICE_TOKEN

from apiwatch.collector.runtime import Collector
from apiwatch.config import Config, SourceConfig
from apiwatch.server.app import create_app
from apiwatch.users import FILE_NAME, Accounts


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with tiny costs: same code paths, milliseconds instead of a second a test."""
    monkeypatch.setattr("apiwatch.users.PasswordHasher", lambda: PasswordHasher(
        time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    """An open data directory with detection running and a user of each role."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "hostile.yaml").write_text(HOSTILE_RULE)
    config = Config(data_dir=tmp_path / "data",
                    sources={"app": SourceConfig(token="tok-app-0123456789abcdef")},
                    alerts={"rules": [str(rules)]})
    config.dashboard.login_max_failures = 3
    config.server.read_token = SERVICE_TOKEN
    opened = Collector.open(config, detect=True)
    accounts = Accounts(opened.config.data_dir / FILE_NAME)
    for role in ROLES:
        accounts.add(role, role, PASSWORD)
    accounts.close()
    yield opened
    opened.close()


@pytest.fixture
def base_url(collector: Collector) -> Iterator[str]:
    """The URL of the collector's app, served until the test ends."""
    app = create_app(collector.config, collector.pipeline, detection=collector.detection)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    """A client of the app that does not follow redirects (not logged in)."""
    with httpx.Client(base_url=base_url, follow_redirects=False) as client:
        yield client
