"""A batch encoded once for every sink: the same events and lines as sanitizing one by one."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from apiwatch.capture.batch import EncodedBatch, ecs_lines, sanitized_batch
from apiwatch.capture.emitter import CHUNK_EVENTS, Emitter
from apiwatch.capture.http import event_from_record
from apiwatch.capture.sinks import JsonLinesFileSink, SpoolSink
from apiwatch.capture.spool import Spool
from apiwatch.events import ClientIPResolver, Event, make_event
from apiwatch.formats.ecs import encode_ecs
from apiwatch.sanitize import Sanitizer

SANITIZER = Sanitizer()
ERRORS: list[str] = []

# Values as an app or an attacker may put them in an event: clean text, secrets, controls,
# quotes, non-ASCII, long runs, card numbers, nested mappings, lists, numbers, a float.
VALUES = st.one_of(
    st.sampled_from([
        "/api/v1/items/42", "curl/8.5", "GET /items/{item_id} 200", "4111 1111 1111 1111",
        "password=hunter2", "Bearer abcdefghijklmnop0123456789", "AKIAIOSFODNN7EXAMPLE",
        "a\nb", "quote\"here", "ünïcode", "del\x7f", "x" * 3000, "https://u:p@host/x",
        "2c0e7a3e-1b2d-4f5a-9c8d-7e6f5a4b3c2d", "sk_live_0123456789abcdefghijklmn",
    ]),
    st.text(max_size=40),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.sampled_from(["a", "password=x", "\u2028"]), max_size=3),
    st.dictionaries(st.sampled_from(["password", "note"]), st.text(max_size=10), max_size=2),
    # A mapping first or later in a list, after a string or a number.
    st.lists(st.one_of(st.sampled_from(["a", "x,{y", 7]), st.just({"password": "x"})),
             max_size=3),
)
FIELDS = st.dictionaries(
    st.sampled_from([
        "url.path", "user_agent.original", "message", "user.name", "url.query", "labels.team",
        "http.request.id", "apiwatch.api_key.id", "custom.field", "event.reason",
    ]),
    VALUES,
    max_size=5,
)
#: (made by make_event, so in spec order; or a plain mapping), fields.
EVENTS = st.lists(st.tuples(st.booleans(), FIELDS), max_size=12)


def built(specs: list[tuple[bool, dict[str, Any]]]) -> list[Event]:
    return [make_event("http_request", fields) if made else dict(fields) for made, fields in specs]


def one_by_one(events: list[Event]) -> tuple[list[Event], list[bytes]]:
    clean = [SANITIZER(copy.deepcopy(event)) for event in events]
    return clean, [encode_ecs(event)[:-1] for event in clean]


@settings(max_examples=300, deadline=None)
@given(EVENTS)
@example([(True, {"url.path": "/a/1"})] * 3)
@example([(True, {"custom.field": {"password": "x"}})])
def test_batch_gives_what_sanitizing_one_by_one_gives(
    specs: list[tuple[bool, dict[str, Any]]],
) -> None:
    """Events and ECS lines of a batch equal sanitizing each event then encoding it, whatever
    the events hold (the batch fast path may only skip work, never change the result)."""
    events = built(specs)
    expected = one_by_one(events)
    batch = sanitized_batch(copy.deepcopy(events), SANITIZER, _fail, None)
    assert (list(batch), batch.lines) == expected
    assert ecs_lines(batch) == expected[1]


def _fail() -> None:
    ERRORS.append("failed")


def access_events(n: int) -> list[Event]:
    resolver = ClientIPResolver([])
    records = [
        ("http_request", "GET", f"/items/{i}", "10.0.0.1", ((b"user-agent", b"wrk"),),
         "/items/{item_id}", None, None, 200, 1_700_000_000_000_000_000 + i, 1234, 0, 27, (),
         None, None, None)
        for i in range(n)
    ]
    return [event_from_record(r, resolver, SANITIZER.fingerprint) for r in records]


def test_clean_access_events_take_the_batch_fast_path() -> None:
    """Ordinary access-log events are cleared as a batch: the sanitizer is never called on one
    of them (it would be, were the fast path to miss them all the time)."""
    calls: list[Event] = []

    class Counting(Sanitizer):
        def __call__(self, event: Event) -> Event:
            calls.append(event)
            return super().__call__(event)

    events = access_events(200)
    batch = sanitized_batch(copy.deepcopy(events), Counting(), _fail, None)
    assert calls == []
    assert (list(batch), batch.lines) == one_by_one(events)


@pytest.mark.parametrize(
    "value", [{"password": "x"}, {}, [{"note": "x"}], ["a", {"note": "x"}], [7, {}]]
)
def test_a_mapping_as_a_value_is_never_cleared_by_the_batch_test(value: Any) -> None:
    """A mapping as a value, alone or anywhere in a list, sends the batch to the sanitizer
    (which redacts sensitive keys inside it); braces in strings (route templates) do not."""
    events = access_events(3)
    events[1]["custom.field"] = value
    lines = [orjson.dumps(event) for event in events]
    assert not SANITIZER.encoded_clean(events, lines)
    del events[1]["custom.field"]
    assert SANITIZER.encoded_clean(events, [orjson.dumps(event) for event in events])


def test_one_dirty_event_is_sanitized_and_the_rest_kept() -> None:
    """A secret in one event of a batch is redacted in that event's line; the others are
    written as they were."""
    events = access_events(5)
    events[2]["url.query"] = "password=hunter2"
    batch = sanitized_batch(copy.deepcopy(events), SANITIZER, _fail, None)
    assert b"hunter2" not in b"\n".join(batch.lines)
    assert batch.lines == one_by_one(events)[1]


def test_an_event_that_cannot_be_sanitized_is_left_out_and_reported() -> None:
    """A sanitizer failure drops only that event, and says so through `on_error`."""

    class Failing(Sanitizer):
        def __call__(self, event: Event) -> Event:
            if event.get("url.path") == "/boom":
                raise ValueError("boom")
            return super().__call__(event)

    events = access_events(3)
    events[1]["url.path"] = "/boom"
    events[1]["labels.x"] = "password=1"  # not clean: the batch goes one by one
    failures: list[str] = []
    batch = sanitized_batch(events, Failing(), lambda: failures.append("x"), None)
    assert [e["url.path"] for e in batch] == ["/items/0", "/items/2"]
    assert len(batch.lines) == 2
    assert failures == ["x"]


def test_sinks_write_the_batch_lines(tmp_path: Path) -> None:
    """The file and spool sinks write exactly `encode_ecs` of each event, from a batch or from
    a plain list."""
    events = access_events(4)
    expected = b"".join(encode_ecs(e) for e in events)
    batch = sanitized_batch(copy.deepcopy(events), SANITIZER, _fail, None)
    for name, given_events in (("batch", batch), ("list", events)):
        sink = JsonLinesFileSink(tmp_path / f"{name}.jsonl")
        sink.write(given_events)
        sink.write([])
        sink.close()
        assert (tmp_path / f"{name}.jsonl").read_bytes() == expected
    spool = Spool(tmp_path / "spool")
    SpoolSink(spool).write(batch)
    spool.roll()
    assert isinstance(batch, EncodedBatch)
    assert b"".join(path.read_bytes() for path in spool.ready()) == expected


class BatchSink:
    """Keeps each batch as the emitter hands it over."""

    def __init__(self) -> None:
        self.batches: list[EncodedBatch] = []

    def write(self, events: Sequence[Event]) -> None:
        """Keep the batch (encoded once, for every sink)."""
        assert isinstance(events, EncodedBatch)
        self.batches.append(events)

    def close(self) -> None:
        """Nothing to release."""


def test_a_batch_built_in_chunks_is_one_batch_in_order() -> None:
    """The emitter builds, encodes and checks a batch `CHUNK_EVENTS` at a time (to pause
    between chunks), yet the sinks get one batch: every event in order, a dirty event in a
    middle chunk sanitized, the lines those of each event sanitized alone."""
    events = access_events(3 * CHUNK_EVENTS + 7)
    events[CHUNK_EVENTS + 5]["url.query"] = "password=hunter2"
    sink = BatchSink()
    emitter = Emitter([sink], sanitizer=SANITIZER, batch_size=len(events), flush_interval=60)
    for event in copy.deepcopy(events):
        emitter.emit(event)
    assert emitter.flush(10.0)
    emitter.close()
    [batch] = sink.batches
    assert (list(batch), batch.lines) == one_by_one(events)
    assert b"hunter2" not in b"\n".join(batch.lines)
