"""`PostgresStore.clear`: the empty store `apiwatch reindex` refills."""

from __future__ import annotations

from store_data import DATASET

from apiwatch.store.base import Query
from apiwatch.store.postgres import PostgresStore


def test_clear_empties_and_the_store_refills(postgres_store: PostgresStore) -> None:
    """After clear the store is empty with no highest index, and the same events insert again."""
    postgres_store.insert(DATASET)
    before = postgres_store.query(Query(order="oldest", limit=1000)).events
    postgres_store.clear()
    assert postgres_store.count(Query()) == 0
    assert postgres_store.max_ledger_index() is None
    postgres_store.insert(DATASET)
    assert postgres_store.query(Query(order="oldest", limit=1000)).events == before
