"""Network fields of `source.ip` from MaxMind DB files (the `.mmdb` format of GeoLite2/GeoIP2).

An ASN database (GeoLite2-ASN, GeoIP2-ISP) gives `source.as.number` and
`source.as.organization.name`; a country or city database (GeoLite2-Country, GeoIP2-City...)
gives `source.geo.country_iso_code`. Only public addresses are looked up: private, loopback,
link-local, shared (CGNAT) and documentation ranges, and text that is not an address, are left
alone. A database's answer replaces what the source sent for these fields, since a source is
never trusted. Lookups are cached per address (LRU), as one client sends many events.

Format: MaxMind DB File Format Specification 2.0; read with MaxMind's `maxminddb` reader.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

from apiwatch.errors import ConfigError
from apiwatch.events import Event

#: Fields an ASN database provides, and those a country/city database provides.
ASN_FIELDS = ("source.as.number", "source.as.organization.name")
GEO_FIELDS = ("source.geo.country_iso_code",)
#: Addresses whose fields are kept (an LRU): enough for the active clients of a busy API.
CACHE_SIZE = 65_536

Fields = tuple[tuple[str, Any], ...]
Lookup = Callable[[Any], Any]


def _open(path: str, key: str) -> Lookup:
    """The `get` of an open MaxMind DB reader; a ConfigError naming `key` if it cannot be."""
    try:
        import maxminddb  # noqa: PLC0415 - optional: needed only when a database is configured
    except ImportError:
        raise ConfigError(f"enrich.{key}: reading {path} needs the maxminddb package "
                          "(pip install 'apiwatch[geoip]')") from None
    try:
        reader = maxminddb.open_database(path)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise ConfigError(f"enrich.{key}: cannot open {path} as a MaxMind DB: {exc}") from None
    get: Lookup = reader.get
    return get


def _asn(record: Mapping[str, Any]) -> Fields:
    number, name = record.get("autonomous_system_number"), record.get(
        "autonomous_system_organization")
    out: list[tuple[str, Any]] = []
    if isinstance(number, int):
        out.append((ASN_FIELDS[0], number))
    if isinstance(name, str):
        out.append((ASN_FIELDS[1], name))
    return tuple(out)


def _geo(record: Mapping[str, Any]) -> Fields:
    country = record.get("country")
    code = country.get("iso_code") if isinstance(country, Mapping) else None
    return ((GEO_FIELDS[0], code),) if isinstance(code, str) else ()


class NetworkEnricher:
    """Adds network fields to events in place; call it on each event before it is sanitized."""

    def __init__(self, asn: Lookup | None = None, geo: Lookup | None = None,
                 cache_size: int = CACHE_SIZE) -> None:
        self._sources = [(get, parse) for get, parse in ((asn, _asn), (geo, _geo))
                         if get is not None]
        self.fields: Callable[[str], Fields] = lru_cache(maxsize=cache_size)(self._lookup)

    def __call__(self, event: Event) -> Event:
        """The event, with the fields of its `source.ip` added (if any)."""
        ip = event.get("source.ip")
        if type(ip) is str:
            found = self.fields(ip)
            if found:
                event.update(found)
        return event

    def _lookup(self, text: str) -> Fields:
        """The fields of one address (uncached)."""
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return ()
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global:
            return ()
        out: Fields = ()
        for get, parse in self._sources:
            record = get(ip)
            if isinstance(record, Mapping):
                out += parse(record)
        return out


def open_enricher(asn_db: str = "", geo_db: str = "") -> NetworkEnricher | None:
    """An enricher over the configured database files, or None when neither is set."""
    if not asn_db and not geo_db:
        return None
    return NetworkEnricher(asn=_open(asn_db, "asn_db") if asn_db else None,
                           geo=_open(geo_db, "geo_db") if geo_db else None)


def unmet_needs(requires: Iterable[str], *, asn_db: str = "", geo_db: str = "") -> list[str]:
    """What a rule needing `requires` misses with these databases, one line per field
    (`needs source.as.number: no ASN database configured`); fields no database provides
    are the sources' business and are not listed."""
    out = []
    for name in requires:
        if name in ASN_FIELDS and not asn_db:
            out.append(f"needs {name}: no ASN database configured ([enrich] asn_db)")
        elif name in GEO_FIELDS and not geo_db:
            out.append(f"needs {name}: no country database configured ([enrich] geo_db)")
    return out
