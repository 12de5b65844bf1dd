"""The catalogue's AS-number rules on events enriched from MaxMind's GeoLite2-ASN test database
(vendored, see data/README.md): they fire on a key's new AS and stay quiet without the
database, when the /24 rule watches new networks instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apiwatch.detect import Engine, load_catalogue
from apiwatch.detect.rules import TEST_EPOCH
from apiwatch.enrich import NetworkEnricher, open_enricher
from apiwatch.events import Event, format_timestamp

ASN_DB = str(Path(__file__).parent / "data" / "GeoLite2-ASN-Test.mmdb")
TELSTRA, ATT = "1.128.{}.{}", "12.81.92.1"  # AS1221 and AS7018 in the test database


def request(t: float, ip: str, n: int) -> Event:
    """A request with key-x from `ip`, `t` seconds after TEST_EPOCH."""
    return {"@timestamp": format_timestamp(round((TEST_EPOCH + t) * 1e9)),
            "event.action": "http_request", "event.id": f"r{n}", "source.ip": ip,
            "apiwatch.api_key.id": "key-x", "http.response.status_code": 200}


def history() -> list[Event]:
    """Two days of key-x's requests from Telstra addresses in many /24s."""
    return [request(i * 3000.0, TELSTRA.format(i % 50, 1 + i), i) for i in range(60)]


def rules_fired(events: list[Event], enrich: NetworkEnricher | None) -> list[str]:
    """The catalogue's alerts on `events`, enriched first when given an enricher."""
    engine = Engine(load_catalogue())
    out: list[Any] = []
    for event in events:
        out += engine.process(enrich(event) if enrich else event)
    return [a.rule for a in out]


@pytest.fixture(scope="module")
def enrich() -> NetworkEnricher:
    """An enricher over the ASN test database."""
    built = open_enricher(ASN_DB)
    assert built is not None
    return built


def test_a_new_asn_for_a_key_fires_with_the_database(enrich: NetworkEnricher) -> None:
    """With the ASN database, a key used from AT&T after two days on Telstra raises
    api_key_new_asn; the many Telstra /24s raise nothing, as they are one network."""
    fired = rules_fired([*history(), request(61 * 3000.0, ATT, 99)], enrich)
    assert fired == ["api_key_new_asn"]


def test_without_the_database_the_asn_rules_stay_quiet() -> None:
    """Without the database the AS-number rules see nothing, and api_key_new_network watches
    /24s instead (the AT&T address is a new /24)."""
    fired = rules_fired([*history(), request(61 * 3000.0, ATT, 99)], None)
    assert "api_key_new_asn" not in fired
    assert "api_key_new_network" in fired


def test_two_asns_at_once_fire_only_with_the_database(enrich: NetworkEnricher) -> None:
    """A key used from Telstra and AT&T within a minute raises api_key_multi_asn with the
    database, and nothing without it (two addresses are below the address rule's 3)."""
    events = [request(0, TELSTRA.format(0, 1), 0), request(60, ATT, 1)]
    assert rules_fired([dict(e) for e in events], enrich) == ["api_key_multi_asn"]
    assert rules_fired(events, None) == []
