"""Network enrichment from MaxMind DB files: MaxMind's own test databases (GeoLite2-ASN-Test and
GeoIP2-Country-Test, vendored from the maxminddb sdist; see data/README.md), read by the real
`maxminddb` reader, in the enricher alone and in the collector's pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from apiwatch.collector.runtime import Collector
from apiwatch.config import load_config
from apiwatch.enrich import NetworkEnricher, open_enricher, unmet_needs
from apiwatch.errors import ConfigError
from apiwatch.events import make_event

DATA = Path(__file__).parent / "data"
ASN_DB = str(DATA / "GeoLite2-ASN-Test.mmdb")
GEO_DB = str(DATA / "GeoIP2-Country-Test.mmdb")


@pytest.fixture(scope="module")
def enricher() -> NetworkEnricher:
    """An enricher over both test databases."""
    built = open_enricher(ASN_DB, GEO_DB)
    assert built is not None
    return built


def _enrich(enricher: NetworkEnricher, ip: Any, **fields: Any) -> dict[str, Any]:
    return enricher({"source.ip": ip, **fields})


class TestValues:
    @pytest.mark.parametrize(("ip", "number", "name"), [
        ("1.128.0.1", 1221, "Telstra Pty Ltd"),
        ("12.81.92.1", 7018, "AT&T Services"),
        ("149.101.100.1", 6167, "CELLCO-PART"),
        ("2600:6000::1", 237, "Merit Network Inc."),
    ])
    def test_asn_of_known_addresses(self, enricher: NetworkEnricher, ip: str, number: int,
                                    name: str) -> None:
        """A public address in the ASN database gets its AS number and organization."""
        event = _enrich(enricher, ip)
        assert event["source.as.number"] == number
        assert event["source.as.organization.name"] == name

    @pytest.mark.parametrize(("ip", "country"), [
        ("2.125.160.216", "GB"), ("81.2.69.160", "GB"), ("89.160.20.112", "SE"),
        ("216.160.83.56", "US"), ("::ffff:81.2.69.160", "GB"),
    ])
    def test_country_of_known_addresses(self, enricher: NetworkEnricher, ip: str,
                                        country: str) -> None:
        """A public address in the country database gets its ISO country code (an
        IPv4-mapped IPv6 address is looked up as the IPv4 address)."""
        assert _enrich(enricher, ip)["source.geo.country_iso_code"] == country

    def test_an_address_in_neither_database_is_left_alone(self,
                                                          enricher: NetworkEnricher) -> None:
        """An address the databases do not know gets no network field."""
        assert _enrich(enricher, "8.8.4.4") == {"source.ip": "8.8.4.4"}

    @pytest.mark.parametrize("ip", ["10.1.2.3", "192.168.0.9", "127.0.0.1", "::1",
                                    "fe80::1", "100.64.0.1", "203.0.113.7", "not an ip", 42,
                                    None])
    def test_private_loopback_and_invalid_addresses_are_skipped(
            self, enricher: NetworkEnricher, ip: Any) -> None:
        """Private, loopback, link-local, shared and documentation addresses, text that is
        not an address and non-strings are not looked up and the event is unchanged."""
        assert _enrich(enricher, ip) == {"source.ip": ip}

    def test_the_database_replaces_what_the_source_sent(self,
                                                        enricher: NetworkEnricher) -> None:
        """A source cannot choose its AS: the database's answer overwrites the field."""
        event = _enrich(enricher, "1.128.0.1", **{"source.as.number": 64500})
        assert event["source.as.number"] == 1221

    def test_repeated_addresses_are_answered_from_the_cache(self) -> None:
        """One address seen many times is looked up in the database once."""
        built = open_enricher(ASN_DB)
        assert built is not None
        for _ in range(100):
            built({"source.ip": "1.128.0.1"})
        info = built.fields.cache_info()  # type: ignore[attr-defined]
        assert (info.misses, info.hits) == (1, 99)


class TestConfiguration:
    def test_no_database_means_no_enricher(self) -> None:
        """Without `[enrich]` databases nothing is added and nothing is opened."""
        assert open_enricher("", "") is None

    @pytest.mark.parametrize("bad", ["missing.mmdb", __file__])
    def test_an_unreadable_database_is_a_config_error(self, tmp_path: Path,
                                                      bad: str) -> None:
        """A missing file or one that is not a MaxMind DB fails at start, naming the key."""
        with pytest.raises(ConfigError, match=r"enrich\.asn_db: cannot open"):
            open_enricher(str(tmp_path / bad) if bad == "missing.mmdb" else bad)

    def test_paths_come_from_the_file_or_the_environment(self, tmp_path: Path) -> None:
        """`[enrich] asn_db` is read from the TOML file and APIWATCH_ENRICH_GEO_DB overrides."""
        path = tmp_path / "apiwatch.toml"
        path.write_text(f'[enrich]\nasn_db = "{ASN_DB}"\n')
        config = load_config(path, env={"APIWATCH_ENRICH_GEO_DB": GEO_DB})
        assert (config.enrich.asn_db, config.enrich.geo_db) == (ASN_DB, GEO_DB)

    def test_unmet_needs_name_the_missing_database(self) -> None:
        """A rule needing the AS number is told which database is missing; fields no
        database provides are not reported."""
        needs = ["source.as.number", "source.geo.country_iso_code", "user.name"]
        assert unmet_needs(needs) == [
            "needs source.as.number: no ASN database configured ([enrich] asn_db)",
            "needs source.geo.country_iso_code: no country database configured "
            "([enrich] geo_db)",
        ]
        assert unmet_needs(needs, asn_db=ASN_DB, geo_db=GEO_DB) == []


def test_collector_stores_enriched_events(tmp_path: Path) -> None:
    """With `[enrich]` configured, the collector's ledger holds each event with the network
    fields of its public source address (and private addresses without them)."""
    config = load_config(None, env={"APIWATCH_DATA_DIR": str(tmp_path / "data"),
                                    "APIWATCH_ENRICH_ASN_DB": ASN_DB,
                                    "APIWATCH_ENRICH_GEO_DB": GEO_DB})
    collector = Collector.open(config)
    try:
        result = collector.pipeline.ingest("api", [
            make_event("http_request", {"source.ip": "2.125.160.216"}),
            make_event("http_request", {"source.ip": "1.128.0.1"}),
            make_event("http_request", {"source.ip": "10.0.0.1"}),
        ])
        assert result.first_index is not None
        stored = [orjson.loads(collector.ledger.read(result.first_index + i)) for i in range(3)]
    finally:
        collector.close()
    assert stored[0]["source.geo.country_iso_code"] == "GB"
    assert stored[1]["source.as.number"] == 1221
    assert "source.as.number" not in stored[2]
    assert "source.geo.country_iso_code" not in stored[2]
