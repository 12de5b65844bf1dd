"""Store fixtures: one SQLite file and one PostgreSQL schema per test, plus a shared data set.

PostgreSQL is real: `APIWATCH_TEST_POSTGRES` (default: the local server CI starts) must be
reachable, or the PostgreSQL half of the suite fails rather than skips.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from store_data import DATASET, POSTGRES_DSN

from apiwatch.store.base import Store
from apiwatch.store.postgres import PostgresStore
from apiwatch.store.sqlite import SqliteStore


def _sqlite(path: Path) -> Store:
    return SqliteStore(path / "events.db")


def _postgres() -> Iterator[PostgresStore]:
    schema = f"apiwatch_test_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(POSTGRES_DSN, schema=schema)
    try:
        yield store
    finally:
        store.close()
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def postgres_store() -> Iterator[PostgresStore]:
    """A PostgreSQL store in a schema of its own, dropped afterwards."""
    yield from _postgres()


def _store(backend: str, path: Path) -> Iterator[Store]:
    if backend == "sqlite":
        store = _sqlite(path)
        yield store
        store.close()
    else:
        yield from _postgres()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each backend."""
    yield from _store(request.param, tmp_path)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """A store of each backend holding DATASET (inserted in two batches); tests only read it."""
    for store in _store(request.param, tmp_path_factory.mktemp("loaded")):
        store.insert(DATASET[:20])
        store.insert(DATASET[20:])
        yield store


@pytest.fixture
def both(tmp_path: Path, postgres_store: PostgresStore) -> Iterator[tuple[Store, Store]]:
    """A SQLite and a PostgreSQL store holding DATASET."""
    sqlite = _sqlite(tmp_path)
    for each in (sqlite, postgres_store):
        each.insert(DATASET)
    yield sqlite, postgres_store
    sqlite.close()
