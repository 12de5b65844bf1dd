"""The benches' HTTP load generator: sources posting pre-signed batches to `apiwatch serve`.

Batches are signed before the clock starts, as a source signs on its own machine, and posted
with the standard library's client (a third of httpx's CPU per request): the generator runs on
the same two cores as the collector, so what it spends is taken from the figure. The collector
still checks every signature; the run must end within its clock-skew window (300 s).
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from apiwatch.signing import sign_batch

Signed = list[tuple[bytes, dict[str, str]]]


class Refused(Exception):
    """The collector answered a batch with something other than 200."""


def wait_ready(port: int, seconds: float = 60.0) -> None:
    """Return once the collector answers /healthz (its port opens earlier, before the replay
    memory exists that refuses batches signed before it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.05)
    raise SystemExit(f"no collector answers on port {port}")


def sign_all(bodies: Sequence[Sequence[bytes]], token: Callable[[int], str]) -> list[Signed]:
    """Each source's batch bodies with their signature headers (`token(source_number)`)."""
    return [
        [(body, {"Content-Type": "application/x-ndjson", **sign_batch(token(client), body)})
         for body in client_bodies]
        for client, client_bodies in enumerate(bodies)
    ]


def post_all(
    port: int, signed: Sequence[Signed], latencies: list[float] | None = None
) -> float:
    """Post every source's batches at once (one connection each); the seconds it took.
    `latencies`, if given, receives each batch's seconds from sending to the answer."""

    def send(batches: Signed) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for body, headers in batches:
                sent = time.perf_counter()
                connection.request("POST", "/v1/events", body=body, headers=headers)
                answer = connection.getresponse()
                text = answer.read()
                if latencies is not None:
                    latencies.append(time.perf_counter() - sent)
                if answer.status != 200:
                    raise Refused(f"{answer.status} {text[:500]!r}")
        finally:
            connection.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(len(signed)) as pool:
        list(pool.map(send, signed))
    return time.perf_counter() - start
