"""Enrichment: fields the collector adds to an event from local data before storing it.

Framework-free. `NetworkEnricher` adds the autonomous system and country of a public
`source.ip` from MaxMind-format databases (`[enrich] asn_db`, `geo_db`); `unmet_needs` says which
of the fields a rule `requires` no configured database provides.
"""

from apiwatch.enrich.network import (
    ASN_FIELDS,
    GEO_FIELDS,
    NetworkEnricher,
    open_enricher,
    unmet_needs,
)

__all__ = ["ASN_FIELDS", "GEO_FIELDS", "NetworkEnricher", "open_enricher", "unmet_needs"]
