"""Synthetic HTTP(S) checks of the monitored API, run by the collector on a schedule.

Each `[[probes]]` table of the config is one check; its result is a `probe_result` event
recorded through `Pipeline.record`, so the catalogue (`detect/catalogue/probes.yaml`) raises the
alerts. A result fails for the first problem found, in this order: `down` (no HTTP answer),
`wrong_status`, `body_mismatch`, `certificate_expiry` (HTTPS only), `slow`.

The certificate is read on a second TLS connection that does not verify it, so that the expiry
of a self-signed or otherwise untrusted certificate is still reported; whether the request
itself verifies TLS is the probe's `verify_tls`.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509

from apiwatch.errors import ConfigError
from apiwatch.events import Event, make_event

log = logging.getLogger("apiwatch.monitor")

#: Days before `notAfter` at which a certificate is reported (see docs/detection.md).
DEFAULT_CERT_WARNING_DAYS = 20


@dataclass(frozen=True)
class Probe:
    """One configured check: request `method url`, expect `status` and `body_regex`."""

    name: str
    url: str
    method: str = "GET"
    status: int = 200
    body_regex: str = ""
    latency_ms: float = 1000.0
    cert_warning_days: int = DEFAULT_CERT_WARNING_DAYS
    interval_seconds: float = 60.0
    timeout_seconds: float = 10.0
    verify_tls: bool = True

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> Probe:
        """A probe from one `[[probes]]` table; unknown keys and bad types are ConfigErrors."""
        kinds = {f.name: f.type for f in fields(cls)}
        unknown = set(data) - set(kinds)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        missing = {"name", "url"} - set(data)
        if missing:
            raise ConfigError(f"{where}: missing key(s) {', '.join(sorted(missing))}")
        types: dict[str, type | tuple[type, ...]] = {
            "str": str, "int": int, "float": (int, float), "bool": bool,
        }
        for key, value in data.items():
            wanted = types[str(kinds[key])]
            if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
                raise ConfigError(f"{where}.{key}: expected {kinds[key]}, got {value!r}")
        probe = cls(**data)
        if urlsplit(probe.url).scheme not in {"http", "https"}:
            raise ConfigError(f"{where}.url: {probe.url!r} is not an http(s) URL")
        if probe.interval_seconds <= 0 or probe.timeout_seconds <= 0:
            raise ConfigError(f"{where}: interval_seconds and timeout_seconds must be > 0")
        try:
            re.compile(probe.body_regex)
        except re.error as exc:
            raise ConfigError(f"{where}.body_regex: {exc}") from None
        return probe


def parse_probes(tables: Sequence[Mapping[str, Any]]) -> list[Probe]:
    """The `[[probes]]` list of a config, validated; names must be unique."""
    probes = [Probe.from_mapping(t, f"probes[{i}]") for i, t in enumerate(tables)]
    names = [p.name for p in probes]
    if len(set(names)) != len(names):
        raise ConfigError("probes: names must be unique")
    return probes


def certificate_not_after(host: str, port: int, timeout: float) -> datetime:
    """The `notAfter` of the certificate `host:port` presents, verified or not."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # expiry is reported even for untrusted certificates
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError("the server presented no certificate")
    return x509.load_der_x509_certificate(der).not_valid_after_utc


def _problem(probe: Probe, response: httpx.Response, seconds: float) -> tuple[str, str] | None:
    """The first problem of an answered probe, as `(code, reason)`; None if it passed."""
    if response.status_code != probe.status:
        return "wrong_status", f"wrong status {response.status_code}, expected {probe.status}"
    if probe.body_regex and not re.search(probe.body_regex, response.text):
        return "body_mismatch", f"body does not match {probe.body_regex!r}"
    parts = urlsplit(probe.url)
    if parts.scheme == "https" and parts.hostname:
        try:
            not_after = certificate_not_after(
                parts.hostname, parts.port or 443, probe.timeout_seconds
            )
        except (OSError, ValueError) as exc:
            return "down", f"down: cannot read the certificate: {exc}"
        days = (not_after - datetime.now(UTC)).total_seconds() / 86400
        if days < probe.cert_warning_days:
            return "certificate_expiry", f"certificate expires in {max(0, int(days))} days"
    if seconds * 1000 > probe.latency_ms:
        return "slow", f"slow: {seconds * 1000:.0f} ms over {probe.latency_ms:.0f} ms"
    return None


def run_probe(probe: Probe) -> Event:
    """Run `probe` once; the `probe_result` event describing what happened."""
    started = time.perf_counter()
    fields_: dict[str, Any] = {
        "apiwatch.probe.name": probe.name,
        "url.full": probe.url,
        "http.request.method": probe.method,
    }
    problem: tuple[str, str] | None
    try:
        with httpx.Client(verify=probe.verify_tls, timeout=probe.timeout_seconds) as client:
            response = client.request(probe.method, probe.url)
        seconds = time.perf_counter() - started
        fields_["http.response.status_code"] = response.status_code
        problem = _problem(probe, response, seconds)
    except httpx.HTTPError as exc:
        seconds = time.perf_counter() - started
        problem = ("down", f"down: {type(exc).__name__}: {exc}")
    fields_["event.duration"] = round(seconds * 1e9)  # ECS: nanoseconds
    if problem is not None:
        fields_["apiwatch.probe.problem"] = problem[0]
    return make_event(
        "probe_result",
        fields_,
        outcome="failure" if problem else "success",
        reason=problem[1] if problem else None,
    )


class ProbeScheduler:
    """Runs each probe every `interval_seconds`, handing results to `record`.

    Each probe has a thread of its own, so that a probe waiting out its timeout on a hung
    endpoint does not delay the others; a probe never overlaps itself (a run longer than the
    interval is followed at once by the next).
    """

    def __init__(self, probes: Sequence[Probe], record: Callable[[Event], object]) -> None:
        self.probes = list(probes)
        self._record = record
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start one thread per probe (nothing happens without probes)."""
        if self._threads:
            return
        for probe in self.probes:
            thread = threading.Thread(target=self._run, args=(probe,), daemon=True,
                                      name=f"apiwatch-probe-{probe.name}")
            thread.start()
            self._threads.append(thread)

    def _run(self, probe: Probe) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                self._record(run_probe(probe))
            except Exception:  # one failed record must not stop the probe
                log.exception("apiwatch: cannot record the result of probe %s", probe.name)
            # After an overrun, the next run starts now rather than in a burst of catch-ups.
            due = max(due + probe.interval_seconds, time.monotonic())
            self._stop.wait(due - time.monotonic())

    def stop(self, timeout: float = 15.0) -> None:
        """Stop after the probes in flight, waiting `timeout` seconds for them in all."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
