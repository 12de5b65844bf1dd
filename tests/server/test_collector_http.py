"""`apiwatch serve` over real HTTP: signed ingest, every refusal, reads, proofs and metrics."""

from __future__ import annotations

import base64
import gzip
import re
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from collector_harness import (
    READ_TOKEN,
    SMALL_LIMITS,
    Collector,
    client,
    launch,
    ndjson,
    post,
    query,
    shut,
    token_of,
)

from apiwatch.formats.ecs import encode_ecs
from apiwatch.ledger import Checkpoint, leaf_hash, verify_consistency, verify_inclusion
from apiwatch.ledger.checkpoint import open_checkpoint
from apiwatch.ledger.keys import Keyring
from apiwatch.signing import sign_batch

SOURCES = ["good", "retry", "partial", "gap", "flood", "edge", "metered", "status"]
READ = {"Authorization": f"Bearer {READ_TOKEN}"}


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    """One collector for the module, with small limits and a rate of 5 events/s per source."""
    running = launch(tmp_path_factory.mktemp("http"), SOURCES, SMALL_LIMITS)
    yield running
    shut(running)


@pytest.fixture
def http(collector: Collector) -> Iterator[httpx.Client]:
    """A client from 127.0.0.1."""
    with client(collector.url) as c:
        yield c


def test_signed_batch_is_accepted_and_readable(http: httpx.Client) -> None:
    """A signed batch is acknowledged with its count and its events can be read back."""
    answer = post(http, "good", ndjson(range(1, 4)))
    assert answer.status_code == 200
    assert answer.json() == {"accepted": 3, "duplicates": 0}
    events = query(http, "apiwatch.source:good AND event.action:http_request")
    assert sorted(e["apiwatch.seq"] for e in events) == [1, 2, 3]


def test_gzip_batch_is_accepted(http: httpx.Client) -> None:
    """A gzip body (signed as sent) is inflated and stored."""
    body = gzip.compress(ndjson(range(10, 12)))
    answer = post(http, "good", body, extra={"Content-Encoding": "gzip"})
    assert answer.json() == {"accepted": 2, "duplicates": 0}


def _bomb() -> bytes:
    return gzip.compress(b"\n" * (4 * 1024 * 1024), compresslevel=9)


def _refusal_cases() -> list[tuple[str, int, Callable[[httpx.Client], httpx.Response]]]:
    body = ndjson([1])
    stale = sign_batch(token_of("edge"), body, int(time.time()) - 1000)
    huge_line = ndjson([1], **{"labels.note": "x" * 5000})
    return [
        ("missing_token", 401, lambda h: h.post("/v1/events", content=body)),
        ("unknown_token", 401, lambda h: h.post(
            "/v1/events", content=body, headers=sign_batch("not-a-token", body))),
        ("bad_signature", 401, lambda h: h.post(
            # Signed when sent: the cases are built at collection, minutes before some run.
            "/v1/events", content=body + b" ", headers=sign_batch(token_of("edge"), body))),
        ("stale_timestamp", 401, lambda h: h.post("/v1/events", content=body, headers=stale)),
        ("batch_too_large", 413, lambda h: post(h, "edge", ndjson(range(1, 300)))),
        ("too_many_events", 413, lambda h: post(h, "edge", b"{}\n" * 201)),
        ("event_too_large", 413, lambda h: post(h, "edge", huge_line)),
        ("decompressed_too_large", 413, lambda h: post(
            h, "edge", _bomb(), extra={"Content-Encoding": "gzip"})),
        ("bad_lines", 400, lambda h: post(h, "edge", ndjson([1]) + b'{"event.action": 3}\n')),
        ("bad_timestamp", 401, lambda h: h.post(
            "/v1/events", content=body, headers={
                **sign_batch(token_of("edge"), body), "X-Apiwatch-Timestamp": "yesterday"})),
        ("bad_gzip", 400, lambda h: post(
            h, "edge", gzip.compress(body)[:-9], extra={"Content-Encoding": "gzip"})),
        ("unsupported_encoding", 415, lambda h: post(
            h, "edge", body, extra={"Content-Encoding": "br"})),
    ]


@pytest.mark.parametrize(
    ("peer", "case"), [(f"127.0.0.{10 + i}", c) for i, c in enumerate(_refusal_cases())],
    ids=[c[0] for c in _refusal_cases()],
)
def test_refusal_is_answered_and_recorded(
    collector: Collector,
    http: httpx.Client,
    peer: str,
    case: tuple[str, int, Callable[[httpx.Client], httpx.Response]],
) -> None:
    """Each refused request gets its status and JSON code and becomes an ingest_refused event."""
    code, status, send = case
    with client(collector.url, peer) as sender:
        answer = send(sender)
    assert answer.status_code == status
    assert answer.json()["error"] == code
    assert token_of("edge") not in answer.text
    events = query(http, f"event.action:ingest_refused AND source.ip:{peer}")
    assert [e["event.reason"] for e in events] == [code]
    assert events[0]["apiwatch.source"] == "apiwatch"
    if code not in ("missing_token", "unknown_token"):
        assert events[0]["user.name"] == "edge"  # the claimed source, once the token matched


def test_bad_lines_are_listed_and_nothing_is_stored(http: httpx.Client) -> None:
    """A batch with a malformed line is refused whole, naming the line and the field."""
    body = ndjson([1]) + ndjson([2], **{"source.ip": "not-an-ip"}) + ndjson([3])
    answer = post(http, "partial", body)
    assert answer.status_code == 400
    problem = answer.json()
    assert problem["error"] == "bad_lines"
    assert [(b["line"], b["field"]) for b in problem["lines"]] == [(2, "source.ip")]
    assert query(http, "apiwatch.source:partial AND event.action:http_request") == []


def test_partial_acceptance_stores_the_good_lines(http: httpx.Client) -> None:
    """With X-Apiwatch-Partial: 1 the good lines are stored and the bad ones listed."""
    body = ndjson([11]) + b"not json\n" + ndjson([12, 13])
    answer = post(http, "partial", body, extra={"X-Apiwatch-Partial": "1"})
    assert answer.status_code == 200
    result = answer.json()
    assert (result["accepted"], result["duplicates"]) == (3, 0)
    assert [r["line"] for r in result["rejected"]] == [2]
    events = query(http, "apiwatch.source:partial AND event.action:http_request")
    assert sorted(e["apiwatch.seq"] for e in events) == [11, 12, 13]


def test_replayed_batch_is_refused(http: httpx.Client) -> None:
    """The same signed request sent twice is stored once; the second gets 409."""
    body = ndjson([1, 2])
    headers = sign_batch(token_of("retry"), body)
    assert http.post("/v1/events", content=body, headers=headers).status_code == 200
    again = http.post("/v1/events", content=body, headers=headers)
    assert again.status_code == 409
    assert again.json()["error"] == "replayed_batch"


def test_resigned_retry_is_not_duplicated(http: httpx.Client) -> None:
    """A retried batch, signed anew, is acknowledged as duplicates and stored once."""
    body = ndjson(range(3, 8))
    now = int(time.time())
    assert post(http, "retry", body, timestamp=now).json() == {"accepted": 5, "duplicates": 0}
    retried = post(http, "retry", body, timestamp=now + 1)
    assert retried.json() == {"accepted": 0, "duplicates": 5}
    events = query(http, "apiwatch.source:retry AND apiwatch.seq>=3")
    assert sorted(e["apiwatch.seq"] for e in events) == [3, 4, 5, 6, 7]


def test_rate_limit_answers_429_with_retry_after(http: httpx.Client) -> None:
    """Past its burst (10 s of 5 events/s) a source is told to wait."""
    assert post(http, "flood", ndjson(range(1, 41))).status_code == 200
    answer = post(http, "flood", ndjson(range(41, 81)))
    assert answer.status_code == 429
    assert answer.json()["error"] == "rate_limited"
    assert int(answer.headers["Retry-After"]) >= 1


def test_sequence_gap_becomes_an_event(http: httpx.Client) -> None:
    """A jump in a source's sequence numbers is recorded as source_sequence_gap."""
    post(http, "gap", ndjson([1, 2]))
    post(http, "gap", ndjson([5, 6]))
    gaps = query(http, "event.action:source_sequence_gap AND apiwatch.source:gap")
    assert [(g["apiwatch.gap.first"], g["apiwatch.gap.last"]) for g in gaps] == [(3, 4)]
    status = http.get("/v1/sources", headers=READ).json()["sources"]["gap"]
    assert (status["events"], status["gaps"], status["missing"]) == (4, 1, 2)


def test_refusals_past_the_budget_are_counted_not_recorded(collector: Collector) -> None:
    """A peer flooding bad requests gets at most ten refusal events a minute."""
    peer = "127.0.0.99"
    with client(collector.url, peer) as sender:
        for _ in range(15):
            assert sender.post("/v1/events", content=b"x").status_code == 401
    with client(collector.url) as reader:
        events = query(reader, f"event.action:ingest_refused AND source.ip:{peer}")
        metrics = reader.get("/metrics").text
    assert len(events) == 10
    assert _metric(metrics, "apiwatch_refusal_events_suppressed_total") >= 5


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in /metrics")


def test_metrics_count_refusals_by_reason(http: httpx.Client) -> None:
    """/metrics counts refused requests by source and reason, and accepted events."""
    body = ndjson([1])
    post(http, "metered", body)
    http.post("/v1/events", content=body + b"\n", headers=sign_batch(token_of("metered"), body))
    text = http.get("/metrics").text
    assert _metric(text, "apiwatch_ingest_refused_total",
                   source="metered", reason="bad_signature") == 1
    assert _metric(text, "apiwatch_events_accepted_total", source="metered") == 1
    assert _metric(text, "apiwatch_ledger_size") > 0
    assert _metric(text, "apiwatch_store_lag") == 0
    assert _metric(text, "apiwatch_ingest_in_flight") == 0


def test_reads_need_the_read_token_and_are_recorded(http: httpx.Client) -> None:
    """Reading events needs the read token, and each read is a data_access event."""
    assert http.get("/v1/events").status_code == 401
    source_token = {"Authorization": f"Bearer {token_of('good')}"}
    assert http.get("/v1/events", headers=source_token).json()["error"] == "unknown_token"
    query(http, "user.name:someone-specific")
    reads = query(http, "event.action:data_access")
    assert any(r.get("url.query", "").find("someone-specific") >= 0 for r in reads)
    assert {r["user.name"] for r in reads} == {"reader"}


def test_time_range_and_paging(http: httpx.Client) -> None:
    """`since`/`until` bound the events by time and `next_cursor` pages through the rest."""
    post(http, "good", ndjson(range(40, 43)))
    params = {"q": "apiwatch.source:good AND apiwatch.seq>=40", "since": "1h", "limit": "2"}
    first = http.get("/v1/events", params=params, headers=READ).json()
    assert len(first["events"]) == 2
    rest = http.get("/v1/events", params={**params, "cursor": first["next_cursor"]},
                    headers=READ).json()
    assert [e["event"]["apiwatch.seq"] for e in first["events"] + rest["events"]] == [42, 41, 40]
    assert rest["next_cursor"] is None
    future = http.get("/v1/events", params={**params, "until": "2h"}, headers=READ).json()
    assert future["events"] == []


def test_bad_query_is_a_json_400(http: httpx.Client) -> None:
    """A filter, time, limit or order that does not parse is answered 400 bad_query."""
    for params in ({"q": "user.name:("}, {"since": "soon"}, {"limit": "0"}, {"order": "up"}):
        answer = http.get("/v1/events", params=params, headers=READ)
        assert (answer.status_code, answer.json()["error"]) == (400, "bad_query"), params


def test_sources_report_counts_and_rate(http: httpx.Client) -> None:
    """/v1/sources reports every configured source with events, duplicates and last minute."""
    post(http, "status", ndjson([1, 2]))
    post(http, "status", ndjson([2, 3]), timestamp=int(time.time()) - 1)
    sources = http.get("/v1/sources", headers=READ).json()["sources"]
    assert set(SOURCES) <= set(sources)
    status = sources["status"]
    assert (status["events"], status["duplicates"], status["high_seq"]) == (3, 1, 3)
    assert status["events_last_minute"] == 3
    assert status["last_event_time"] is not None


def test_checkpoint_and_inclusion_proof_verify(collector: Collector, http: httpx.Client) -> None:
    """The served checkpoint verifies with the ledger's key; an event's proof with its root."""
    post(http, "good", ndjson([20]))
    found = http.get("/v1/events", params={"q": "apiwatch.source:good AND apiwatch.seq:20"},
                     headers=READ).json()["events"]
    index, event = found[0]["index"], found[0]["event"]
    checkpoint = _signed(http, collector, above=index)
    assert http.get("/v1/ledger/checkpoint").headers["content-type"].startswith("text/plain")
    proof = http.get("/v1/ledger/proof/inclusion",
                     params={"index": index, "size": checkpoint.size}).json()
    record = encode_ecs(event).rstrip(b"\n")
    verify_inclusion(leaf_hash(record), index, checkpoint.size, _hashes(proof),
                     checkpoint.root_hash)
    beyond = http.get("/v1/ledger/proof/inclusion",
                      params={"index": checkpoint.size, "size": checkpoint.size})
    assert (beyond.status_code, beyond.json()["error"]) == (400, "bad_range")


def test_consistency_proof_verifies(collector: Collector, http: httpx.Client) -> None:
    """Two checkpoints fetched at different sizes are proven consistent by the served proof."""
    first = _signed(http, collector, above=0)
    post(http, "good", ndjson([30, 31]))
    second = _signed(http, collector, above=first.size)
    proof = http.get("/v1/ledger/proof/consistency",
                     params={"first": first.size, "second": second.size}).json()
    verify_consistency(first.size, second.size, _hashes(proof), first.root_hash,
                       second.root_hash)


def _signed(http: httpx.Client, collector: Collector, above: int) -> Checkpoint:
    """The served checkpoint, once it covers more than `above` records, opened with the key."""
    verifiers = Keyring.load(collector.data / "ledger" / "keys").verifiers()
    deadline = time.monotonic() + 15
    while True:
        note = http.get("/v1/ledger/checkpoint")
        if note.status_code == 200:
            checkpoint = open_checkpoint(note.content, verifiers, "apiwatch/test")[0]
            if checkpoint.size > above or time.monotonic() > deadline:
                return checkpoint
        time.sleep(0.2)


def _hashes(proof: dict[str, list[str]]) -> list[bytes]:
    return [base64.b64decode(h) for h in proof["hashes"]]


def test_health_and_unknown_routes(http: httpx.Client) -> None:
    """/healthz reports the ledger; unknown routes and methods are JSON errors too."""
    health = http.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["ledger_size"] > 0
    assert health["store_lag"] == 0
    assert http.get("/nope").json()["error"] == "not_found"
    assert http.delete("/v1/events").json()["error"] == "method_not_allowed"
