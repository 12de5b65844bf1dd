"""The Store contract, run on SQLite and PostgreSQL alike (`store` is parameterized)."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_data import DATASET, T0_NS

from apiwatch.events.model import Event
from apiwatch.store import Query, QueryError, Store, StoreError, open_store
from apiwatch.store.base import Page

T0 = datetime.fromtimestamp(T0_NS / 1e9, UTC)


def indexes(page: Page) -> list[int]:
    return [stored.index for stored in page.events]


def expected(predicate: Callable[[Event], bool], *, newest: bool = True) -> list[int]:
    """DATASET indexes whose event satisfies `predicate`, in page order."""
    rows = [(event["@timestamp"], i) for i, event in DATASET if predicate(event)]
    return [i for _, i in sorted(rows, reverse=newest)]


def all_pages(store: Store, q: Query) -> list[int]:
    seen: list[int] = []
    while True:
        page = store.query(q)
        seen += indexes(page)
        if page.cursor is None:
            return seen
        q = q.page(page.cursor)


class TestInsert:
    def test_reinserting_an_index_is_a_no_op(self, store: Store) -> None:
        """Inserting a ledger index again, even with another event, keeps the first event."""
        store.insert(DATASET[:3])
        store.insert([(1, DATASET[5][1]), (1, DATASET[6][1]), *DATASET[:3]])
        assert store.count(Query()) == 3
        assert store.query(Query(order="oldest")).events[1].event == DATASET[1][1]

    def test_events_round_trip(self, loaded: Store) -> None:
        """A stored event comes back equal to the inserted one, with its ledger index."""
        stored = store_all = loaded.query(Query(limit=100)).events
        assert {s.index: s.event for s in store_all} == dict(DATASET)
        assert len(stored) == len(DATASET)

    def test_max_ledger_index_tracks_inserts(self, store: Store) -> None:
        """max_ledger_index is None when empty and the highest index once filled."""
        assert store.max_ledger_index() is None
        store.insert(DATASET[4:9])
        assert store.max_ledger_index() == 8

    def test_event_without_timestamp_is_refused(self, store: Store) -> None:
        """A batch holding an event without a valid @timestamp is refused as a whole."""
        bad = {**DATASET[0][1], "@timestamp": "yesterday"}
        with pytest.raises(StoreError, match="index 9"):
            store.insert([DATASET[1], (9, bad)])
        assert store.count(Query()) == 0


    def test_records_store_what_their_events_do(self, store: Store, loaded: Store) -> None:
        """The indexer's path (ledger records as JSON) stores what inserting the decoded
        events does: the same pages, timelines and counts, records with escapes and
        non-ASCII text included (those the C scan leaves to the decoder)."""
        records = [orjson.dumps(event) for _, event in DATASET]
        store.insert_records(0, records[:20])
        store.insert_records(20, records[20:])
        store.insert_records(10, records[10:30])  # a replay after a restart adds nothing
        assert store.query(Query(limit=100)).events == loaded.query(Query(limit=100)).events
        for text in QUERIES:
            q = Query.parse(text, limit=7)
            assert all_pages(store, q) == all_pages(loaded, q), text
        for kind, value in [("ip", "10.0.3.3"), ("user", "Admin"), ("key", "key1")]:
            assert store.timeline(kind, value) == loaded.timeline(kind, value)  # type: ignore[arg-type]
        odd = {**DATASET[0][1], "user.name": 'Zoë "the admin"', "message": "tab\there"}
        store.insert_records(36, [orjson.dumps(odd)])
        assert store.timeline("user", 'Zoë "the admin"').events[0].event == odd

    def test_a_record_that_is_not_an_object_is_refused(self, store: Store) -> None:
        for record in (b"[1, 2]", b'{"@timestamp": '):
            with pytest.raises(StoreError, match="ledger record"):
                store.insert_records(0, [orjson.dumps(DATASET[0][1]), record])
        assert store.count(Query()) == 0


class TestPaging:
    @pytest.mark.parametrize("order", ["newest", "oldest"])
    def test_cursor_pages_cover_every_event_once_in_order(self, loaded: Store, order: str) -> None:
        """Following cursors yields every match once, ordered by (time, index)."""
        q = Query.parse("event.outcome:failure", order=order, limit=4)
        want = expected(lambda e: e["event.outcome"] == "failure", newest=order == "newest")
        assert all_pages(loaded, q) == want

    def test_paging_is_stable_while_events_arrive(self, store: Store) -> None:
        """Events stored between two pages neither repeat nor hide already stored ones."""
        store.insert(DATASET[:20])
        first = store.query(Query(limit=5))
        store.insert(DATASET[20:])
        rest = all_pages(store, Query(limit=5, cursor=first.cursor))
        older = [i for i in expected(lambda e: True) if i < 20]
        assert indexes(first) + rest == older

    def test_cursor_of_other_order_is_refused(self, loaded: Store) -> None:
        """A cursor made for newest-first cannot page an oldest-first query."""
        cursor = loaded.query(Query(limit=2)).cursor
        with pytest.raises(QueryError, match="cursor"):
            loaded.query(Query(order="oldest", cursor=cursor))


FILTERS: list[tuple[str, Callable[[Event], bool]]] = [
    ("user.name:admin", lambda e: e.get("user.name") == "admin"),
    ("user.name:adm*", lambda e: str(e.get("user.name", "")).startswith("adm")),
    ('user.name:"adm*"', lambda e: False),
    ("user.name:?dmin", lambda e: e.get("user.name") in ("admin", "Admin")),
    ("NOT user.name:admin", lambda e: e.get("user.name") != "admin"),
    (
        "NOT user.name:admin OR apiwatch.tenant:t1",
        lambda e: e.get("user.name") != "admin" or e["apiwatch.tenant"] == "t1",
    ),
    (
        "NOT (user.name:admin OR apiwatch.tenant:t1)",
        lambda e: not (e.get("user.name") == "admin" or e["apiwatch.tenant"] == "t1"),
    ),
    (
        "user.name:alice apiwatch.tenant:t1 OR event.action:authz_fail",
        lambda e: (e.get("user.name") == "alice" and e["apiwatch.tenant"] == "t1")
        or e["event.action"] == "authz_fail",
    ),
    ("source.ip:10.0.1.0/24", lambda e: e["source.ip"].startswith("10.0.1.")),
    ("source.ip:10.0.0.0/8", lambda e: e["source.ip"].startswith("10.")),
    ("source.ip:2001:db8::/32", lambda e: e["source.ip"].startswith("2001:db8:")),
    ("source.ip:10.0.2.3", lambda e: e["source.ip"] == "10.0.2.3"),
    ("client.ip:192.168.1.0/24", lambda e: e.get("client.ip") == "192.168.1.9"),
    ("NOT client.ip:192.168.1.0/24", lambda e: e.get("client.ip") != "192.168.1.9"),
    ("http.response.status_code>=400", lambda e: e["http.response.status_code"] >= 400),
    ("http.response.status_code:300", lambda e: e["http.response.status_code"] == 300),
    ("tags:zone-1", lambda e: "zone-1" in e["tags"]),
    ("tags:zone*", lambda e: True),
    ('apiwatch.route:"/v1/items/{id}"', lambda e: e["apiwatch.route"] == "/v1/items/{id}"),
    ("apiwatch.api_key.id:key1", lambda e: e.get("apiwatch.api_key.id") == "key1"),
    ("@timestamp>=2026-11-02", lambda e: e["@timestamp"] >= "2026-11-02"),
    ("@timestamp<2026-11-02", lambda e: e["@timestamp"] < "2026-11-02"),
    ("@timestamp:2026-11-02", lambda e: e["@timestamp"].startswith("2026-11-02")),
    ("@timestamp>2026-11-02", lambda e: e["@timestamp"] >= "2026-11-03"),
    ("message:authz_fail", lambda e: e["message"] == "authz_fail"),
]


class TestFilters:
    @pytest.mark.parametrize(("text", "predicate"), FILTERS, ids=[t for t, _ in FILTERS])
    def test_filter_matches_its_python_meaning(
        self, loaded: Store, text: str, predicate: Callable[[Event], bool]
    ) -> None:
        """Each filter selects exactly the events its Python counterpart selects."""
        assert indexes(loaded.query(Query.parse(text, limit=100))) == expected(predicate)
        assert loaded.count(Query.parse(text)) == len(expected(predicate))

    def test_time_range_is_half_open(self, loaded: Store) -> None:
        """since is inclusive, until exclusive."""
        since, until = T0 + timedelta(hours=10), T0 + timedelta(hours=30)
        got = indexes(loaded.query(Query(since=since, until=until)))
        assert got == [5, 4, 3, 2]

    def test_injection_in_values_matches_nothing(self, loaded: Store) -> None:
        """SQL in a value is data: it matches no row and breaks nothing."""
        for payload in ("' OR '1'='1", "admin'; DROP TABLE events; --", '" OR 1=1 --', "%", "_"):
            for field in ("user.name", "message", "tags"):
                quoted = payload.replace("\\", "\\\\").replace('"', '\\"')
                assert loaded.query(Query.parse(f'{field}:"{quoted}"')).events == []
        assert loaded.count(Query()) == len(DATASET)

    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(value=st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")))
    def test_any_quoted_value_is_harmless(self, loaded: Store, value: str) -> None:
        """Any text in a quoted value runs as a bound parameter: no error, no stray match."""
        quoted = value.replace("\\", "\\\\").replace('"', '\\"')
        names = {e.get("user.name") for _, e in DATASET}
        got = loaded.query(Query.parse(f'user.name:"{quoted}" OR message:"{quoted}"'))
        assert got.events == [] or value in names | {"authz_fail", "authn_login_fail"}


class TestTimeline:
    @pytest.mark.parametrize(
        ("kind", "value", "field"),
        [
            ("ip", "10.0.1.1", "source.ip"),
            ("ip", "2001:db8:0::1", "source.ip"),
            ("user", "admin", "user.name"),
            ("key", "key0", "apiwatch.api_key.id"),
        ],
    )
    def test_timeline_follows_one_actor(
        self, loaded: Store, kind: str, value: str, field: str
    ) -> None:
        """A timeline lists the actor's events newest first; an IP matches in any spelling."""
        canonical = str(ipaddress.ip_address(value)) if kind == "ip" else value
        want = expected(lambda e: e.get(field) == canonical)
        assert want
        assert indexes(loaded.timeline(kind, value, limit=100)) == want  # type: ignore[arg-type]

    def test_timeline_pages_and_bounds(self, loaded: Store) -> None:
        """Timeline pages chain by cursor, oldest first, within [since, until)."""
        since = T0 + timedelta(hours=20)
        want = expected(
            lambda e: e.get("user.name") == "bob" and e["@timestamp"] >= "2026-11-01T20",
            newest=False,
        )
        got: list[int] = []
        cursor = None
        while True:
            page = loaded.timeline(
                "user", "bob", since=since, order="oldest", limit=2, cursor=cursor
            )
            got += indexes(page)
            if (cursor := page.cursor) is None:
                break
        assert got == want

    def test_unknown_actor_has_empty_timeline(self, loaded: Store) -> None:
        """An actor never seen has no events."""
        assert loaded.timeline("user", "mallory") == Page([], None)

    def test_invalid_ip_actor_is_a_query_error(self, loaded: Store) -> None:
        """A timeline by IP needs an IP address."""
        with pytest.raises(QueryError):
            loaded.timeline("ip", "10.0.0.300")


class TestAggregations:
    def test_top_counts_values_most_frequent_first(self, loaded: Store) -> None:
        """top lists the most frequent values with counts, ties broken by value."""
        users = Counter(e["user.name"] for _, e in DATASET if "user.name" in e)
        want = sorted(users.items(), key=lambda item: (-item[1], item[0].encode()))[:3]
        assert loaded.top("user.name", Query(), 3) == want
        ips = Counter(ipaddress.ip_address(e["source.ip"]) for _, e in DATASET)
        by_count = sorted(ips.items(), key=lambda item: (-item[1], item[0].version, item[0]))
        assert loaded.top("source.ip", Query(), 4) == [(str(ip), n) for ip, n in by_count[:4]]

    def test_top_of_a_cold_field_is_refused(self, loaded: Store) -> None:
        """top works on hot fields only."""
        with pytest.raises(QueryError, match="hot field"):
            loaded.top("message", Query())

    def test_histogram_counts_per_bucket(self, loaded: Store) -> None:
        """histogram counts events per fixed-width bucket, oldest bucket first."""
        fails = [e for _, e in DATASET if e["event.action"] == "authz_fail"]
        days = Counter(datetime.fromisoformat(e["@timestamp"][:10]) for e in fails)
        want = [(day.replace(tzinfo=UTC), n) for day, n in sorted(days.items())]
        got = loaded.histogram(Query.parse("event.action:authz_fail"), timedelta(days=1))
        assert got == want


QUERIES = [text for text, _ in FILTERS] + ["", "NOT tags:edge", "user.name:*"]


def test_backends_give_identical_results(both: tuple[Store, Store]) -> None:
    """SQLite and PostgreSQL return the same pages, timelines, counts and top lists."""
    sqlite, postgres = both
    for text in QUERIES:
        q = Query.parse(text, limit=7)
        assert all_pages(sqlite, q) == all_pages(postgres, q), text
        assert sqlite.top("apiwatch.route", q) == postgres.top("apiwatch.route", q), text
        assert sqlite.histogram(q, timedelta(hours=7)) == postgres.histogram(
            q, timedelta(hours=7)
        ), text
    for kind, value in [("ip", "10.0.3.3"), ("user", "Admin"), ("key", "key1")]:
        assert sqlite.timeline(kind, value) == postgres.timeline(kind, value)  # type: ignore[arg-type]


def test_open_store_picks_the_backend(tmp_path: object) -> None:
    """open_store takes a path or sqlite:/// URL and refuses an unknown scheme."""
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    store.close()
    with pytest.raises(StoreError, match="scheme"):
        open_store("mysql://localhost/x")


def _odd_event(second: int, **fields: object) -> Event:
    return {"@timestamp": f"2026-11-05T00:00:{second:02d}.000000Z",
            "event.action": "authn_login_fail", **fields}


#: Hot values the interning has to get right, in one batch: a new address in two spellings and
#: twice in the same spelling, one that is not an address, a user name that is not a string
#: (a number, a list), a new user twice, an event without any actor.
ODD_BATCH: list[tuple[int, Event]] = list(enumerate([
    _odd_event(0, **{"source.ip": "2001:DB8::7", "user.name": "carol"}),
    _odd_event(1, **{"source.ip": "2001:db8::7", "user.name": 7}),
    _odd_event(2, **{"source.ip": "not-an-ip", "user.name": ["carol", "dave"]}),
    _odd_event(3, **{"source.ip": "198.51.100.7", "user.name": "carol"}),
    _odd_event(4, **{"source.ip": "198.51.100.7"}),
    _odd_event(5, **{"source.ip": "not-an-ip", "apiwatch.api_key.id": "k9"}),
    _odd_event(6),
]))


class TestOddHotValues:
    def test_each_value_is_found_by_its_meaning(self, store: Store) -> None:
        """Spellings of one address are one actor, an invalid address or a user name that is
        not a string is no value at all, and a value new twice in a batch is one value."""
        store.insert(ODD_BATCH)
        assert indexes(store.timeline("ip", "2001:db8::7")) == [1, 0]
        assert indexes(store.timeline("ip", "198.51.100.7")) == [4, 3]
        assert indexes(store.timeline("user", "carol")) == [3, 0]
        assert indexes(store.query(Query.parse("NOT source.ip:0.0.0.0/0"))) == [6, 5, 2, 1, 0]
        assert indexes(store.query(Query.parse("NOT user.name:*"))) == [6, 5, 4, 2, 1]
        assert store.count(Query.parse("source.ip:198.51.100.7 OR user.name:carol")) == 3
        assert store.top("source.ip", Query()) == [("198.51.100.7", 2), ("2001:db8::7", 2)]
        assert store.top("user.name", Query()) == [("carol", 2)]
        assert store.top("apiwatch.api_key.id", Query()) == [("k9", 1)]


#: Addresses at the edges of the IPv4 space (SQLite computes their ids from the address rather
#: than interning them), beside IPv6 ones, an IPv4-mapped one among them.
EDGE_ADDRESSES = [
    "0.0.0.0", "0.0.0.1", "10.1.2.3", "127.255.255.255", "128.0.0.0", "255.255.255.254",
    "255.255.255.255", "::", "::ffff:0.0.0.0", "::ffff:10.1.2.3", "2001:db8::1",
]
EDGE_NETWORKS = [
    "0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "0.0.0.0", "255.255.255.255", "10.0.0.0/8",
    "127.0.0.0/8", "255.255.255.254/31", "::/0", "::ffff:0:0/96", "::/127", "2001:db8::/32",
]


class TestAddressEdges:
    def test_cidr_top_and_timeline_at_the_edges(self, store: Store) -> None:
        """Each CIDR block finds exactly its addresses of its own family; top lists and
        timelines give every address back as its canonical text."""
        # Address i appears i + 1 times, so top lists have no ties.
        batch: list[tuple[int, Event]] = []
        for i, address in enumerate(EDGE_ADDRESSES):
            for _ in range(i + 1):
                batch.append((len(batch), _odd_event(len(batch) % 60, **{"source.ip": address})))
        store.insert(batch)
        for text in EDGE_NETWORKS:
            network = ipaddress.ip_network(text)
            want = sorted(
                (i for i, e in batch if ipaddress.ip_address(e["source.ip"]) in network),
                reverse=True,
            )
            q = Query.parse(f"source.ip:{text}", limit=1000)
            assert sorted(indexes(store.query(q)), reverse=True) == want, text
            assert store.count(q) == len(want), text
        n = len(EDGE_ADDRESSES)
        assert store.top("source.ip", Query(), n) == [
            (str(ipaddress.ip_address(address)), i + 1)
            for i, address in reversed(list(enumerate(EDGE_ADDRESSES)))
        ]
        for address in EDGE_ADDRESSES:
            got = indexes(store.timeline("ip", address, limit=1000))
            assert sorted(got) == [i for i, e in batch if e["source.ip"] == address], address
