"""The app's own databases over its lifespan: account changes made beside it reach the
ledger, and shutdown closes the accounts and dashboards databases."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn
from dashboard_support import actions

from apiwatch.collector.runtime import Collector
from apiwatch.server.app import create_app
from apiwatch.users import FILE_NAME, Accounts


def test_cli_changes_reach_the_ledger_and_shutdown_closes_databases(
        collector: Collector) -> None:
    """A role changed with `apiwatch users` while the collector runs is an authz_change event
    by the time it stops (its tick or shutdown records it, once); after shutdown no
    connection holds users.sqlite3 or dashboards.sqlite3 open (their WAL files are gone)."""
    data = collector.config.data_dir
    app = create_app(collector.config, collector.pipeline, detection=collector.detection,
                     tick_seconds=3600)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        time.sleep(0.01)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert httpx.get(url + "/healthz").status_code == 200
    accounts = Accounts(data / FILE_NAME)
    try:
        accounts.set_role("viewer", "analyst", actor="cli:ops")
    finally:
        accounts.close()
    server.should_exit = True
    thread.join(30)
    sock.close()
    [change] = actions(collector, "authz_change")
    assert change["user.name"] == "cli:ops"
    assert len(actions(collector, "user_created")) == 3  # the fixture's users, once each
    for name in (FILE_NAME, "dashboards.sqlite3"):
        assert (data / name).exists()
        assert not (data / f"{name}-wal").exists(), name
