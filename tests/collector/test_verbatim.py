"""Lines recorded as they came: a clean line becomes its ledger record with the collector's
stamps appended (for a compact line, byte for byte what encoding the event again would write);
any other line (escaped, nested, repeated keys, filled in, holding a secret) is encoded again.
Events that come without lines (`apiwatch ingest`, syslog) are encoded once: a batch the
sanitizer's batch test clears is recorded from that encoding, any other event by event."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apiwatch.collector import pipeline as pipeline_module
from apiwatch.collector.runtime import Collector
from apiwatch.config import load_config
from apiwatch.events import Event, make_event
from apiwatch.formats.ecs import encode_ecs
from apiwatch.formats.jsonl import decode_line
from apiwatch.sanitize import Sanitizer

RECEIVED_NS = 1_800_000_000_123_456_789
#: Tokens whose runs of letters and digits are short: only their hints give them away.
GITLAB_TOKEN = "glpat-ab-cd_ef-gh_ij-kl_mn-op"
BEARER_TOKEN = "Bearer ab.cd/ef+gh.ij/kl+mn"
TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from([
        "alice", "GET /items/{id}", "password=hunter2", "AKIAIOSFODNN7EXAMPLE",
        "4111 1111 1111 1111", "line\nbreak", 'quote"d', "back\\slash", "caf\u00e9", "x" * 3000,
        GITLAB_TOKEN, BEARER_TOKEN, "task-list",
    ]),
)
FIELDS = st.fixed_dictionaries(
    {"user.name": TEXT},
    optional={"url.query": TEXT, "message": TEXT, "labels.team": TEXT,
              "apiwatch.api_key.id": st.sampled_from(["ak_f200117e96f8b09d", "sk_live_raw_key"]),
              "apiwatch.source": st.just("spoofed"), "source.ip": st.just("192.0.2.7")},
)


def _spellings(event: Event) -> list[bytes]:
    """The ways a source may write one event: ours, and others' that must be encoded again."""
    ours = encode_ecs(event)[:-1]
    nested = dict(event)
    nested["source"] = {"port": 4242}
    missing = {k: v for k, v in event.items() if k != "event.id"}
    return [
        ours,
        json.dumps(event).encode(),  # spaces after separators, non-ASCII escaped
        json.dumps(nested, separators=(",", ":")).encode(),
        ours[:-1] + b',"user.name":"mallory"}',  # a repeated key
        ours[:-1] + b',"user.name" :"mallory"}',  # ... that the count of `":` would miss
        ours.replace(b'"event.severity":4', b'"event.severity":-0'),
        ours[:-1] + b',"event.risk_score":1e2}',
        encode_ecs(missing)[:-1],  # the decoder fills event.id in
        json.dumps(dict(reversed(event.items())), separators=(",", ":")).encode(),
    ]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Collector, Collector]]:
    """Two collectors: one given the lines, one only the decoded events."""
    opened = []
    for name in ("lines", "events"):
        data = tmp_path_factory.mktemp(name)
        config = load_config(None, env={"APIWATCH_DATA_DIR": str(data / "data"),
                                        "APIWATCH_STORE_INDEX_PROCESS": "false"})
        collector = Collector.open(config)
        collector.pipeline.tenants = {"app": "acme"}
        opened.append(collector)
    yield opened[0], opened[1]
    for collector in opened:
        collector.close()


def _records(collector: Collector, start: int) -> list[bytes]:
    return [collector.ledger.read(index) for index in range(start, collector.ledger.size)]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(FIELDS, min_size=1, max_size=4))
def test_records_are_the_same_with_or_without_lines(
    pair: tuple[Collector, Collector], fields: list[Event]
) -> None:
    """Whatever the line holds and however it is written, the ledger gets the same event."""
    with_lines, without = pair
    events = [make_event("authn_login_fail", f) for f in fields]
    lines = [line for event in events for line in _spellings(event)]
    # Decoded once: the decoder fills a missing event.id with a fresh one.
    decoded = [decode_line(line, n) for n, line in enumerate(lines, 1)]
    starts = with_lines.ledger.size, without.ledger.size
    with_lines.pipeline.ingest("app", copy.deepcopy(decoded), RECEIVED_NS, lines=lines)
    without.pipeline.ingest("app", decoded, RECEIVED_NS)
    records = _records(with_lines, starts[0])
    assert list(map(orjson.loads, records)) == list(map(orjson.loads, _records(without, starts[1])))
    for record in records:  # a repeated key never reaches the ledger
        json.loads(record, object_pairs_hook=_distinct_keys)


def _distinct_keys(pairs: list[tuple[str, object]]) -> None:
    assert len({key for key, _ in pairs}) == len(pairs), pairs


def test_clean_lines_are_not_encoded_again(
    pair: tuple[Collector, Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the capture middleware sends (compact, sanitized at the source) is stored as it
    came: the encoder never runs, and the records are what it would have written."""
    with_lines, _ = pair
    events = [
        make_event("authn_login_fail", {"user.name": f"user{n}", "source.ip": "198.51.100.7",
                                        "url.path": "/login", "apiwatch.seq": n})
        for n in range(1, 201)
    ]
    lines = [encode_ecs(event)[:-1] for event in events]
    calls: list[Event] = []

    def encode(event: Event) -> bytes:
        calls.append(event)
        return b""

    monkeypatch.setattr(pipeline_module, "encode_ecs", encode)
    start = with_lines.ledger.size
    with_lines.pipeline.ingest(
        "verbatim", [decode_line(line, n) for n, line in enumerate(lines, 1)], RECEIVED_NS,
        lines=lines,
    )
    assert calls == []
    stamps = {"apiwatch.source": "verbatim", "event.ingested": "2027-01-15T08:00:00.123456Z"}
    assert _records(with_lines, start) == [
        encode_ecs({**event, **stamps})[:-1] for event in events
    ]


def _one_variant(line: bytes, kind: int) -> bytes:
    """A line that must (or, for -0, may) be encoded again: of the same keys in the same order,
    -0, a repeated key, a credential in the query, a raw API key, a value over the cap, a token
    as the user name; the same keys in another order; a space before or after the object."""
    variants = [
        line.replace(b'"event.severity":4', b'"event.severity":-0'),
        line[:-1] + b',"user.name":"mallory"}',
        line.replace(b'"url.query":"page=1"', b'"url.query":"password=hunter2"'),
        line.replace(b"ak_f200117e96f8b09d", b"sk_live_raw_key"),
        line.replace(b'"message":"ok"', b'"message":"' + b"word " * 3000 + b'"'),
        line.replace(b'"user.name":"user', b'"user.name":"' + GITLAB_TOKEN.encode()),
        orjson.dumps(dict(reversed(orjson.loads(line).items()))),
        b" " + line,
        line + b" ",
    ]
    return variants[kind]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 40), st.data())
def test_a_batch_of_one_shape_is_judged_as_line_by_line(
    pair: tuple[Collector, Collector], size: int, data: st.DataObject
) -> None:
    """Lines of one shape are checked together (`Pipeline._verbatim_batch`); one odd line
    anywhere in the batch still gets the record it gets on its own, and so do the others:
    the same bytes, but where the odd line is -0 (kept as written, the same JSON value)."""
    with_lines, without = pair
    events = [
        make_event("authn_login_fail", {
            "user.name": f"user{n}", "url.query": "page=1", "message": "ok",
            "apiwatch.api_key.id": "ak_f200117e96f8b09d",
        })
        for n in range(size)
    ]
    lines = [encode_ecs(event)[:-1] for event in events]
    kind = data.draw(st.integers(-1, 8))  # -1: none
    if kind >= 0:
        position = data.draw(st.integers(0, size - 1))
        lines[position] = _one_variant(lines[position], kind)
    decoded = [decode_line(line, n) for n, line in enumerate(lines, 1)]
    starts = with_lines.ledger.size, without.ledger.size
    with_lines.pipeline.ingest("app", copy.deepcopy(decoded), RECEIVED_NS, lines=lines)
    without.pipeline.ingest("app", decoded, RECEIVED_NS)
    records = _records(with_lines, starts[0])
    encoded = _records(without, starts[1])
    assert list(map(orjson.loads, records)) == list(map(orjson.loads, encoded))
    assert kind == 0 or records == encoded
    assert not any(GITLAB_TOKEN.encode() in record for record in records)


@pytest.mark.parametrize("mixed", [False, True])
def test_a_token_in_a_keyword_field_never_reaches_the_ledger(
    pair: tuple[Collector, Collector], mixed: bool
) -> None:
    """Through `Pipeline.ingest_json`, as `POST /v1/events` sends a batch: among clean lines
    (of one shape, or of two) whose runs of letters and digits are all short, a user name
    that is a GitLab token and a list item that is a Bearer token are redacted, and only their
    lines are encoded again; every other line is recorded as it came."""
    with_lines, _ = pair
    events = []
    for n in range(60):
        fields: dict[str, object] = {"user.name": f"user{n % 7}", "apiwatch.seq": n + 1}
        if not mixed or n % 3:
            fields["tags"] = ["web"] if n % 3 == 1 else ["web", f"t{n}"]
        events.append(make_event("authn_login_fail", fields))
    events[17]["user.name"] = GITLAB_TOKEN
    events[41]["tags"] = ["web", BEARER_TOKEN]
    lines = [encode_ecs(event)[:-1] for event in events]
    source = f"tokens-{mixed}"
    start = with_lines.ledger.size
    result, errors = with_lines.pipeline.ingest_json(source, lines)
    assert errors == []
    assert result is not None
    assert result.accepted == len(lines)
    records = _records(with_lines, start)
    assert not any(GITLAB_TOKEN.encode() in record or b"ef+gh" in record for record in records)
    assert orjson.loads(records[17])["user.name"] == "[REDACTED:gitlab_token]"
    assert orjson.loads(records[41])["tags"] == ["web", "Bearer [REDACTED:bearer]"]
    as_they_came = [n for n, (line, record) in enumerate(zip(lines, records, strict=True))
                    if record.startswith(line[:-1] + b',"apiwatch.source":"' + source.encode())]
    assert as_they_came == [n for n in range(len(lines)) if n not in (17, 41)]


def test_repeats_and_gaps_in_a_clean_batch_keep_each_record_with_its_event(
    pair: tuple[Collector, Collector],
) -> None:
    """A clean batch whose every event is admitted in order is recorded from its lines as
    they stand; one that repeats sequence numbers (a retry) or skips some (a gap event is
    added before it) pairs each admitted event with its own line."""
    with_lines, _ = pair
    source = "retrying"

    def send(seqs: list[int]) -> list[dict[str, object]]:
        lines = [encode_ecs(make_event("authn_login_fail", {
            "user.name": f"user{seq}", "apiwatch.seq": seq,
        }))[:-1] for seq in seqs]
        start = with_lines.ledger.size
        result, errors = with_lines.pipeline.ingest_json(source, lines)
        assert errors == []
        assert result is not None
        return [orjson.loads(record) for record in _records(with_lines, start)]

    first = send(list(range(1, 21)))
    assert [event["apiwatch.seq"] for event in first] == list(range(1, 21))
    second = send([*range(15, 26), 30, 31])  # 15..20 again, then 26..29 missing
    assert second[0]["event.action"] == "source_sequence_gap"
    assert (second[0]["apiwatch.gap.first"], second[0]["apiwatch.gap.last"]) == (26, 29)
    stored = second[1:]
    assert [event["apiwatch.seq"] for event in stored] == [*range(21, 26), 30, 31]
    assert all(event["user.name"] == f"user{event['apiwatch.seq']}" for event in stored)
    third = send([40, 41])  # a gap alone: every event admitted, one more record before them
    assert [event.get("apiwatch.seq") for event in third] == [None, 40, 41]
    assert [event["user.name"] for event in third[1:]] == ["user40", "user41"]
    fourth = send([41, 42])  # a repeat alone: one event fewer than the lines
    assert [(event["apiwatch.seq"], event["user.name"]) for event in fourth] == [(42, "user42")]


def _without_batch_test(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector.pipeline, "_own_lines", lambda events: None)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(FIELDS, min_size=1, max_size=12), st.booleans())
def test_events_without_lines_get_the_records_of_the_event_by_event_path(
    pair: tuple[Collector, Collector], fields: list[Event], reordered: bool
) -> None:
    """A batch of events made here (no lines) gets, byte for byte, the records it gets when
    every event is sanitized and encoded on its own: secrets redacted, a spoofed stamp field
    overwritten, keys out of the encoder's order put back in it."""
    batch_path, event_path = pair
    events = [make_event("authn_login_fail", f) for f in fields]
    if reordered:
        events[-1] = dict(reversed(events[-1].items()))
    starts = batch_path.ledger.size, event_path.ledger.size
    with pytest.MonkeyPatch.context() as monkeypatch:
        _without_batch_test(event_path, monkeypatch)
        event_path.pipeline.ingest("app", copy.deepcopy(events), RECEIVED_NS)
    batch_path.pipeline.ingest("app", events, RECEIVED_NS)
    assert _records(batch_path, starts[0]) == _records(event_path, starts[1])


@pytest.mark.parametrize("odd", ["reordered", "stamp", "token"])
def test_one_odd_event_without_lines_sends_its_batch_event_by_event(
    pair: tuple[Collector, Collector], monkeypatch: pytest.MonkeyPatch, odd: str
) -> None:
    """Among clean events, one whose keys are out of the encoder's order, one that holds a
    stamp field, or one that holds a token: the batch gets the records of the event by event
    path, byte for byte."""
    batch_path, event_path = pair
    events = [make_event("authn_login_fail", {"user.name": f"user{n}"}) for n in range(20)]
    if odd == "reordered":
        events[5] = dict(reversed(events[5].items()))
    elif odd == "stamp":
        events[5]["event.ingested"] = "2020-01-01T00:00:00.000000Z"
    else:
        events[5]["user.name"] = GITLAB_TOKEN
    starts = batch_path.ledger.size, event_path.ledger.size
    _without_batch_test(event_path, monkeypatch)
    event_path.pipeline.ingest("app", copy.deepcopy(events), RECEIVED_NS)
    batch_path.pipeline.ingest("app", events, RECEIVED_NS)
    assert _records(batch_path, starts[0]) == _records(event_path, starts[1])


def test_clean_events_without_lines_are_encoded_once(
    pair: tuple[Collector, Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `apiwatch ingest` hands over (clean events of several shapes): neither the
    per-event sanitizer nor the encoder runs, and the records are what encoding the stamped
    events would write. One event holding a token sends the batch event by event, where it
    alone is redacted."""
    _, collector = pair
    events = [
        make_event("authn_login_fail", {"user.name": f"user{n}", "source.ip": "198.51.100.7",
                                        **({"process.pid": n} if n % 2 else {})})
        for n in range(50)
    ]
    expected = [encode_ecs({**event, "apiwatch.source": "own",
                            "event.ingested": "2027-01-15T08:00:00.123456Z"})[:-1]
                for event in events]
    sanitized: list[Event] = []
    sanitize = collector.pipeline.sanitize
    monkeypatch.setattr(collector.pipeline, "sanitize", _Counting(sanitize, sanitized))
    monkeypatch.setattr(pipeline_module, "encode_ecs", lambda event: b"")
    start = collector.ledger.size
    collector.pipeline.ingest("own", copy.deepcopy(events), RECEIVED_NS)
    assert sanitized == []
    assert _records(collector, start) == expected

    monkeypatch.setattr(pipeline_module, "encode_ecs", encode_ecs)
    events[7]["user.name"] = GITLAB_TOKEN
    start = collector.ledger.size
    collector.pipeline.ingest("own", events, RECEIVED_NS)
    records = _records(collector, start)
    assert len(sanitized) == len(events)
    assert orjson.loads(records[7])["user.name"] == "[REDACTED:gitlab_token]"
    assert [r for n, r in enumerate(records) if n != 7] == [
        r for n, r in enumerate(expected) if n != 7
    ]


class _Counting:
    """The sanitizer, with each event it sanitizes one by one noted."""

    def __init__(self, sanitize: Sanitizer, seen: list[Event]) -> None:
        self._sanitize = sanitize
        self._seen = seen

    def __call__(self, event: Event) -> Event:
        self._seen.append(event)
        return self._sanitize(event)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sanitize, name)
