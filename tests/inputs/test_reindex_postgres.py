"""`apiwatch reindex` on a PostgreSQL store: emptied, then refilled from the ledger.

PostgreSQL is real (the DSN as in tests/store/conftest.py); each test gets a database of its
own, because the store keeps its tables in the fixed schema `apiwatch`.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg import sql

from apiwatch.cli import main
from apiwatch.collector.runtime import Collector
from apiwatch.config import load_config
from apiwatch.events import make_event

POSTGRES_DSN = os.environ.get("APIWATCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
HOUR = 3_600 * 10**9


@pytest.fixture
def database() -> Iterator[str]:
    """The DSN of a fresh PostgreSQL database, dropped afterwards."""
    name = f"apiwatch_reindex_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(POSTGRES_DSN, dbname=name)
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def config_file(tmp_path: Path, database: str) -> Path:
    """A config whose store is the test database, holding events of two days in its ledger."""
    path = tmp_path / "apiwatch.toml"
    path.write_text(
        f'data_dir = "data"\n[store]\nurl = {json.dumps(_url(database))}\n'
        '[ledger]\ndurability = "none"\n'
    )
    collector = Collector.open(load_config(path, env={}))
    base = time.time_ns() - HOUR
    events = [
        make_event("authn_login_fail", {"source.ip": f"10.0.0.{n % 3}", "user.name": "root"},
                   timestamp_ns=base - (n % 2) * 24 * HOUR + n * 10**9)
        for n in range(40)
    ]
    collector.pipeline.ingest("app", events)
    collector.close()
    return path


def _url(dsn: str) -> str:
    """`dsn` (key=value form) as the postgresql:// URL `[store] url` takes."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    return f"postgresql://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"


def _run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, [args[0], "--config", str(config), *args[1:]])


def _query(config: Path) -> dict[int, object]:
    result = _run(config, "query", "", "--since", "30d", "--json", "--limit", "1000")
    assert result.exit_code == 0, result.output
    found = [json.loads(line) for line in result.stdout.splitlines()]
    return {f["index"]: f["event"] for f in found}


def _damage(database: str) -> None:
    """Delete half the stored rows and rewrite another, below the highest index (so the
    catch-up on open does not notice)."""
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("DELETE FROM apiwatch.events WHERE idx % 2 = 0 AND idx < 30")
        conn.execute("UPDATE apiwatch.events SET user_name = 'mallory', "
                     "doc = doc || '{\"user.name\": \"mallory\"}' WHERE idx = 5")


def _count(database: str) -> int:
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT count(*) FROM apiwatch.events").fetchone()
    assert row is not None
    return int(row[0])


def test_reindex_restores_a_damaged_postgres_store(config_file: Path, database: str) -> None:
    """After rows are deleted and altered, reindex makes every query answer as before."""
    before = _query(config_file)
    stored = _count(database)
    _damage(database)
    assert _count(database) < stored
    result = _run(config_file, "reindex")
    assert result.exit_code == 0, result.output
    assert "reindexed" in result.stdout
    assert "PostgreSQL" in result.stdout
    after = _query(config_file)
    # The first query's own record (data_access) is in the ledger, so it is back too.
    assert {index: after[index] for index in before} == before
    assert len(after) == len(before) + 1
    altered = _run(config_file, "query", "user.name:mallory", "--json")
    assert altered.exit_code == 0
    assert altered.stdout == ""


def test_refuses_while_a_collector_runs(config_file: Path, database: str) -> None:
    """Reindexing a PostgreSQL store whose data directory a collector holds exits 2 and
    leaves the store untouched."""
    stored = _count(database)
    collector = Collector.open(load_config(config_file, env={}))
    try:
        result = _run(config_file, "reindex")
    finally:
        collector.close()
    assert result.exit_code == 2
    assert "open in another process" in result.stderr
    assert _count(database) == stored
