"""Splunk HEC and Elasticsearch `_bulk` request bodies, field by field, to a local server;
retries after 503; the failing alert; the cursor surviving a restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forward_support import Receiver, collector, record, wait_for

from apiwatch.alerts.detection import CHANNEL_RULE
from apiwatch.collector.runtime import Collector
from apiwatch.events import parse_timestamp


def _objects(body: bytes) -> list[Any]:
    """The concatenated JSON objects of a HEC body."""
    decoder, text, found = json.JSONDecoder(), body.decode(), []
    position = 0
    while position < len(text):
        value, position = decoder.raw_decode(text, position)
        found.append(value)
        while position < len(text) and text[position].isspace():
            position += 1
    return found


def _records(c: Collector) -> list[dict[str, Any]]:
    ledger = c.pipeline.ledger
    return [json.loads(r) for r in ledger.read_range(0, ledger.size)]


def _caught_up(c: Collector, name: str) -> bool:
    return c.forwarder.positions[name] == c.pipeline.ledger.size


def test_splunk_hec_body_and_headers(tmp_path: Path) -> None:
    """HEC gets POST /services/collector/event with `Authorization: Splunk <token>` and one
    object per event: time in epoch seconds, host, source, sourcetype and the ECS event."""
    receiver = Receiver(default=lambda body: {"text": "Success", "code": 0})
    with receiver.serving() as url, collector(tmp_path, {
        "name": "splunk", "type": "splunk_hec", "url": url, "token": "hec-token",
        "sourcetype": "apiwatch:ecs",
    }) as c:
        record(c, 5)
        wait_for(lambda: _caught_up(c, "splunk"), "the forwarder to catch up")
        records = _records(c)
    sent = [obj for _, _, body in receiver.requests for obj in _objects(body)]
    assert {path for path, _, _ in receiver.requests} == {"/services/collector/event"}
    assert all(h["Authorization"] == "Splunk hec-token" for _, h, _ in receiver.requests)
    assert len(sent) == len(records) == 5
    for obj, event in zip(sent, records, strict=True):
        assert set(obj) == {"time", "host", "source", "sourcetype", "event"}
        assert isinstance(obj["time"], float)
        assert obj["time"] == parse_timestamp(event["@timestamp"]).timestamp()
        assert isinstance(obj["host"], str)
        assert obj["host"]
        assert obj["source"] == "apiwatch"
        assert obj["sourcetype"] == "apiwatch:ecs"
        assert obj["event"] == event


def test_bulk_body_conflicts_and_retry_after_503(tmp_path: Path) -> None:
    """`_bulk` gets NDJSON create actions keyed by event.id, each followed by the ECS document;
    a 503 is retried with the same batch, 409 conflicts on create count as delivered and a
    document refused with 400 is counted, not retried."""
    receiver = Receiver(script=[(503, {"error": "unavailable"})])

    def answer(body: bytes) -> dict[str, Any]:
        actions = body.splitlines()[::2]
        return {"took": 1, "errors": True,
                "items": [{"create": {"status": {0: 409, 2: 400}.get(i, 201)}}
                          for i in range(len(actions))]}

    receiver.default = answer
    with receiver.serving() as url, collector(tmp_path, {
        "name": "es", "type": "elasticsearch", "url": url, "index": "apiwatch-test",
        "api_key": "key-1", "batch_size": 100,
    }) as c:
        record(c, 4)
        wait_for(lambda: _caught_up(c, "es"), "the forwarder to catch up")
        records = _records(c)
        assert c.forwarder.failures["es"] >= 1
        assert c.forwarder.rejected("es") == 1
        assert len(receiver.requests) == 2
    first, retried = receiver.requests[0], receiver.requests[-1]
    assert first[2] == retried[2]  # the same batch again, in the same order
    path, headers, body = retried
    assert path == "/_bulk"
    assert headers["Content-Type"] == "application/x-ndjson"
    assert headers["Authorization"] == "ApiKey key-1"
    assert body.endswith(b"\n")
    lines = [json.loads(line) for line in body.splitlines()]
    sent_events = [event for r in receiver.requests[1:] for event in
                   [json.loads(line) for line in r[2].splitlines()][1::2]]
    assert sent_events == records
    for action, document, event in zip(lines[::2], lines[1::2], records[:len(lines) // 2],
                                       strict=True):
        assert action == {"create": {"_index": "apiwatch-test", "_id": event["event.id"]}}
        assert document == event


def test_failing_destination_raises_an_alert_and_keeps_its_place(tmp_path: Path) -> None:
    """A destination failing `failure_threshold` times in a row raises alert_channel_failing;
    nothing is skipped, and after a restart the cursor resumes where delivery stopped."""
    receiver = Receiver(script=[(503, {})] * 3, default=lambda body: {"code": 0})
    spec = {"name": "splunk", "type": "splunk_hec", "token": "t", "failure_threshold": 3}
    with receiver.serving() as url:
        with collector(tmp_path, {**spec, "url": url}) as c:
            record(c, 2)
            wait_for(lambda: _caught_up(c, "splunk"), "delivery after the outage")
            wait_for(c.detection.repository.select, "the failing alert")
            alert = c.detection.repository.select()[0]
            assert alert["rule"] == CHANNEL_RULE
            assert alert["group"] == {"apiwatch.channel": "forward:splunk"}
            assert c.forwarder.failures["splunk"] == 3
        delivered = len(receiver.requests)
        with collector(tmp_path, {**spec, "url": url}) as c:
            assert c.forwarder.positions["splunk"] > 0
            wait_for(lambda: _caught_up(c, "splunk"), "the alert events after restart")
        resent = [obj["event"]["event.id"] for _, _, body in receiver.requests[delivered:]
                  for obj in _objects(body)]
        before = [obj["event"]["event.id"] for _, _, body in receiver.requests[3:delivered]
                  for obj in _objects(body)]
    assert not set(resent) & set(before)
