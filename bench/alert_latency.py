"""Detection latency: a probe attack's batch sent to `apiwatch serve` -> its alert delivered
at a real webhook, p50 and p99, idle and under background traffic.

    python bench/alert_latency.py [--rate 10000] [--probes 60] [--batch 500]

Each probe is one signed batch of six failed logins from a fresh address (brute_force_ip_fast
fires on the sixth); latency runs from just before the probe's POST to the webhook's receipt of
the HMAC-signed alert. Baseline: the same probes with no other traffic, in the same run.
Background: batches of ordinary requests paced at --rate events/s from another thread; the
rate actually accepted is reported. The collector runs with the default catalogue and a
durable (fsync per batch) ledger.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "alerts"))
from alerts_support import SECRET, Delivery, Serve, WebhookReceiver

from apiwatch.events import make_event
from apiwatch.formats.ecs import encode_ecs
from apiwatch.signing import sign_batch

TOKEN = "tok-app-0123456789abcdef"


class Background(threading.Thread):
    """Posts pre-built batches of ordinary requests, paced at `rate` events per second."""

    def __init__(self, url: str, rate: int, batch: int) -> None:
        super().__init__(daemon=True)
        self.url, self.rate, self.batch = url, rate, batch
        self.bodies = [b"".join(encode_ecs(make_event("http_request", {
            "source.ip": f"192.0.2.{(n * batch + i) % 250 + 1}", "url.path": f"/items/{i}",
            "http.request.method": "GET", "http.response.status_code": 200,
            "user.name": f"user{i % 97}",
        })) for i in range(batch)) for n in range(64)]
        self.sent = 0
        self.stop = threading.Event()
        self.started = self.finished = 0.0

    def run(self) -> None:
        self.started = time.perf_counter()
        interval = self.batch / self.rate
        with httpx.Client(base_url=self.url, timeout=30) as http:
            n = 0
            while not self.stop.is_set():
                body = self.bodies[n % len(self.bodies)]
                answer = http.post("/v1/events", content=body, headers=sign_batch(TOKEN, body))
                if answer.status_code == 200:
                    self.sent += self.batch
                n += 1
                ahead = self.started + n * interval - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
        self.finished = time.perf_counter()

    @property
    def achieved(self) -> float:
        """Events per second accepted."""
        return self.sent / max(self.finished - self.started, 1e-9)


def probes(url: str, hook: WebhookReceiver, count: int, first: int) -> list[float]:
    """Latencies (s) of `count` probe attacks from fresh addresses."""
    out: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for k in range(first, first + count):
            ip = f"10.{k // 65536 % 256}.{k // 256 % 256}.{k % 256}"
            body = b"".join(encode_ecs(make_event(
                "authn_login_fail", {"source.ip": ip, "user.name": "admin"}))
                for _ in range(6))
            start = time.time()
            answer = http.post("/v1/events", content=body, headers=sign_batch(TOKEN, body))
            assert answer.status_code == 200, answer.text
            if not hook.wait_for(partial(_arrived, ip=ip), timeout=30):
                raise SystemExit(f"no alert for probe {ip}")
            delivery = _for_ip(hook.deliveries, ip)[0]
            assert delivery.signed_by(SECRET)
            out.append(delivery.at - start)
            time.sleep(0.2)
    return out


def _for_ip(deliveries: list[Delivery], ip: str) -> list[Delivery]:
    return [d for d in deliveries if d.alert["group"].get("source.ip") == ip]


def _arrived(deliveries: list[Delivery], ip: str) -> bool:
    return bool(_for_ip(deliveries, ip))


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--probes", type=int, default=60)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    hook = WebhookReceiver()
    with tempfile.TemporaryDirectory() as folder:
        serve = Serve(Path(folder), "\n".join([
            "[alerts]", "[[alerts.channels]]", 'name = "soc"', 'type = "webhook"',
            f'url = "{hook.url}"', f'secret = "{SECRET}"']))
        serve.config.write_text(serve.config.read_text().replace(
            "[server]", "[server]\nrate_limit_events_per_second = 1000000"))
        serve.start()
        try:
            idle = probes(serve.url, hook, args.probes, 0)
            background = Background(serve.url, args.rate, args.batch)
            background.start()
            time.sleep(2)  # let the background traffic settle
            loaded = probes(serve.url, hook, args.probes, 100_000)
            background.stop.set()
            background.join()
        finally:
            serve.stop()
            hook.close()
    print(f"{'scenario':<34}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'p99/idle':>10}")
    base = pct(idle, 0.99)
    for name, rate, values in (("idle (baseline)", 0.0, idle),
                               (f"background, target {args.rate}/s", background.achieved,
                                loaded)):
        print(f"{name:<34}{rate:>10.0f}{pct(values, 0.5) * 1e3:>9.1f}"
              f"{pct(values, 0.99) * 1e3:>9.1f}{max(values) * 1e3:>9.1f}"
              f"{pct(values, 0.99) / base:>10.2f}")
    print(f"probes per scenario: {args.probes}; mean under load "
          f"{statistics.mean(loaded) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
