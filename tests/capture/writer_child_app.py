"""An app with a writer process whose sink is slow, killed -9 by itself once the writer holds
every batch (run by test_capture_writer.py).

Usage: python writer_child_app.py EVENTS_FILE MARKER_FILE COUNT

It records COUNT exchanges, waits until the emitter wrote all of them to the writer's pipe,
writes to MARKER_FILE how many lines the sink held at that moment, then kills itself with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apiwatch.capture.config import Capture
from apiwatch.capture.http import Exchange, HttpRequest
from apiwatch.capture.sinks import JsonLinesFileSink
from apiwatch.events import Event


class SlowSink(JsonLinesFileSink):
    """Takes its time over every batch, so the writer is still busy when the app dies."""

    def write(self, events: Sequence[Event]) -> None:
        time.sleep(0.05)
        super().write(events)


def main() -> None:
    events, marker, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    capture = Capture("killed-api", sinks=[SlowSink(events)], access_log=True,
                      writer_process=True, flush_interval=0.01)
    writer = capture.emitter.writer
    assert writer is not None
    sent = [0]
    send = writer.send

    def counting_send(batch: list[Any]) -> None:
        send(batch)
        sent[0] += len(batch)

    writer.send = counting_send  # type: ignore[method-assign]
    for n in range(count):
        request = HttpRequest("GET", f"/items/{n}", "192.0.2.1", None,
                              headers=lambda _: (), route=lambda _: "/items/{id}")
        capture.record(Exchange(request, 200, time.time_ns(), 1000, 0, 2), "http_request")
    while sent[0] < count:
        time.sleep(0.001)
    marker.write_text(f"{len(events.read_bytes().splitlines())} {writer.pid}\n")
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main()
