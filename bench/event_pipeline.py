"""Events built + sanitized + encoded per second, beside the loggers teams use today.

Every contender produces the same 25-field authentication-failure record and writes it, one
line per event, to /dev/null: with a fresh event id (the loggers use the stdlib's uuid4, which
is what they would do; apiwatch makes a UUIDv7) and a per-source sequence number in each.
apiwatch also neutralizes injection and scans for secrets; the others do neither. Rounds are
interleaved and the best round of each is kept, because this machine is noisy; the ratios are
what to read.

    python bench/event_pipeline.py [--events 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import ecs_logging
import orjson
import structlog
from pythonjsonlogger.json import JsonFormatter

from apiwatch.events import SequenceCounter, make_event
from apiwatch.formats.ecs import encode_ecs
from apiwatch.sanitize import Sanitizer

USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)

#: The 14 request-specific fields; with the 11 every event carries that makes 25.
REQUEST_FIELDS: dict[str, Any] = {
    "source.ip": "203.0.113.77",
    "source.port": 51234,
    "user.name": "alice@example.com",
    "url.path": "/api/v1/login",
    "http.request.method": "POST",
    "http.response.status_code": 401,
    "user_agent.original": USER_AGENT,
    "service.name": "shop-api",
    "service.node.name": "shop-api-7f9c",
    "trace.id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "apiwatch.route": "/api/v1/login",
    "apiwatch.tenant": "acme",
}

Sink = Callable[[], None]


def apiwatch_sink(out: io.BufferedWriter) -> Sink:
    sanitize = Sanitizer()
    seq = SequenceCounter()
    write = out.write

    def emit() -> None:
        event = make_event("authn_login_fail", REQUEST_FIELDS, reason="bad password")
        event["apiwatch.seq"] = seq.next()
        write(encode_ecs(sanitize(event)))

    return emit


def _stdlib_logger(name: str, formatter: logging.Formatter, out: io.TextIOBase) -> logging.Logger:
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def _flat_extra() -> dict[str, Any]:
    """The fields every record carries besides the per-event id and sequence number."""
    # stdlib `extra` keys become LogRecord attributes; dotted names are fine there.
    return {
        **REQUEST_FIELDS,
        "event.action": "authn_login_fail",
        "event.category": ["authentication"],
        "event.type": ["start"],
        "event.outcome": "failure",
        "event.reason": "bad password",
        "event.kind": "event",
        "event.severity": 4,
        "ecs.version": "9.4.0",
    }


def _with_ids(extra: dict[str, Any], counter: Iterator[int]) -> dict[str, Any]:
    return {**extra, "event.id": str(uuid.uuid4()), "apiwatch.seq": next(counter)}


def json_logger_sink(out: io.TextIOBase) -> Sink:
    formatter = JsonFormatter("%(asctime)s %(levelname)s %(message)s", timestamp=True)
    logger = _stdlib_logger("bench.pjl", formatter, out)
    extra, counter = _flat_extra(), itertools.count(1)
    return lambda: logger.warning("authn_login_fail", extra=_with_ids(extra, counter))


def ecs_logging_sink(out: io.TextIOBase) -> Sink:
    logger = _stdlib_logger("bench.ecs", ecs_logging.StdlibFormatter(), out)
    extra, counter = _flat_extra(), itertools.count(1)
    return lambda: logger.warning("authn_login_fail", extra=_with_ids(extra, counter))


def structlog_sink(out: io.BufferedWriter) -> Sink:
    counter = itertools.count(1)

    def add_ids(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event_dict["event_id"] = str(uuid.uuid4())
        event_dict["apiwatch_seq"] = next(counter)
        return event_dict

    logger = structlog.wrap_logger(
        structlog.BytesLogger(out),
        processors=[
            add_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        cache_logger_on_first_use=True,
    )
    extra = {k.replace(".", "_"): v for k, v in _flat_extra().items()}
    return lambda: logger.warning("authn_login_fail", **extra)


def measure(emit: Sink, events: int) -> float:
    start = time.perf_counter()
    for _ in range(events):
        emit()
    return events / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    binary = open(os.devnull, "wb")  # noqa: SIM115 - closed at exit of the process
    text = open(os.devnull, "w")  # noqa: SIM115
    contenders: dict[str, Sink] = {
        "apiwatch (build+sanitize+redact+ECS)": apiwatch_sink(binary),
        "structlog + orjson": structlog_sink(binary),
        "stdlib + python-json-logger": json_logger_sink(text),
        "stdlib + ecs-logging": ecs_logging_sink(text),
    }
    best = dict.fromkeys(contenders, 0.0)
    for _ in range(args.rounds):
        for name, emit in contenders.items():
            best[name] = max(best[name], measure(emit, args.events))

    ours = best["apiwatch (build+sanitize+redact+ECS)"]
    print(f"{'contender':40} {'events/s':>12} {'apiwatch is':>12}")
    for name, rate in best.items():
        print(f"{name:40} {rate:12,.0f} {ours / rate:11.2f}x")


if __name__ == "__main__":
    main()
