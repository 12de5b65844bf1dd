"""The collector's HTTP side: signed ingest, the query API, ledger proofs, health and metrics.

`apiwatch.server.app.create_app` builds the Starlette application over a `Pipeline`;
`apiwatch serve` runs it. `auth` is framework-free, so this package imports nothing eagerly.
"""
