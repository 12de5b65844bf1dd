"""The collector's Starlette application: routes, error handlers and the periodic tick.

`create_app` wires the endpoints to a `Pipeline`; it neither opens nor closes the data
directory (`apiwatch.collector.runtime` does), so tests can hand it any pipeline. It opens the
server's own databases there (accounts, dashboards) and closes them when the lifespan ends.
The lifespan runs `tick` (checkpoints, snapshots) every few seconds, writes the summary of
suppressed refusal events and records account changes made with `apiwatch users`; uvicorn
finishes in-flight requests before the lifespan ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from anyio import to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from apiwatch.alerts import Detection
from apiwatch.collector.pipeline import Pipeline
from apiwatch.config import Config
from apiwatch.ledger.layout import CHECKPOINTS_DIR, LATEST
from apiwatch.server.account_audit import AccountAudit
from apiwatch.server.alerts import AlertEndpoints
from apiwatch.server.api_auth import SERVICE, ApiAuth
from apiwatch.server.audit import Audit
from apiwatch.server.auth import RefusalBudget, TokenTable
from apiwatch.server.board_api import BoardEndpoints
from apiwatch.server.dashboard import boards as boards_db
from apiwatch.server.dashboard import build_dashboard, queries
from apiwatch.server.errors import (
    HttpError,
    handle_http_error,
    handle_internal_error,
    handle_starlette_error,
    json_response,
)
from apiwatch.server.ingest import IngestEndpoint
from apiwatch.server.metrics import CONTENT_TYPE_LATEST, Forwarding, Metrics
from apiwatch.server.read import ReadEndpoints
from apiwatch.users import FILE_NAME as USERS_FILE
from apiwatch.users import Accounts

log = logging.getLogger(__name__)

#: Seconds between ticks; the ledger's own policy decides whether a tick signs a checkpoint.
TICK_SECONDS = 2.0


def _status(pipeline: Pipeline, metrics: Metrics) -> dict[str, int]:
    """Ledger size and store lag (also set in `metrics`, with the checkpoint's age)."""
    size = pipeline.ledger.size
    highest = pipeline.store.max_ledger_index()
    lag = size - (0 if highest is None else highest + 1)
    metrics.ledger_size.set(size)
    metrics.store_lag.set(lag)
    latest = pipeline.ledger.directory / CHECKPOINTS_DIR / LATEST
    with contextlib.suppress(FileNotFoundError):  # nothing signed yet: no age
        metrics.checkpoint_age.set(time.time() - os.stat(latest).st_mtime)
    return {"ledger_size": size, "store_lag": lag}


async def _warm_overview(
    pipeline: Pipeline, detection: Detection | None, sources: list[str]
) -> None:
    """Read the default overview once at start: its first reading scans every event of its
    range (the minute cache is per process), so the first person to look does not wait."""
    try:
        await to_thread.run_sync(
            queries.overview, pipeline, None if detection is None else detection.repository,
            sources, queries.since("1h"),
        )
    except Exception:
        log.exception("warming the overview failed")


def create_app(
    config: Config,
    pipeline: Pipeline,
    *,
    tick: Callable[[], None] | None = None,
    tick_seconds: float = TICK_SECONDS,
    detection: Detection | None = None,
    forwarding: Forwarding | None = None,
) -> Starlette:
    """The ASGI app serving ingest, reads, /healthz and /metrics over `pipeline`, the alert
    API over `detection`'s repository when given, and `forwarding`'s counts in /metrics."""
    metrics = Metrics()
    if forwarding is not None:
        metrics.watch_forwarding(forwarding)
    audit = Audit(pipeline, metrics, RefusalBudget())
    accounts = Accounts(config.data_dir / USERS_FILE)
    boards = boards_db.Boards(config.data_dir / boards_db.FILE_NAME)
    account_audit = AccountAudit(accounts, pipeline)
    api_auth = ApiAuth(TokenTable({SERVICE.name: config.server.read_token}), accounts,
                       metrics, audit)
    ingest = IngestEndpoint(config.server, TokenTable(
        {name: s.token for name, s in config.sources.items()}), pipeline, metrics, audit)
    read = ReadEndpoints(pipeline, api_auth, sorted(config.sources), audit)
    board_api = BoardEndpoints(boards, api_auth)

    async def healthz(request: Request) -> Response:
        return json_response(
            {"status": "ok", **await to_thread.run_sync(_status, pipeline, metrics)}
        )

    async def prometheus(request: Request) -> Response:
        await to_thread.run_sync(_status, pipeline, metrics)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def ticker() -> None:
        while True:
            await anyio.sleep(tick_seconds)
            try:
                if tick is not None:
                    await to_thread.run_sync(tick)
                await audit.flush(time.time())
                await account_audit.flush()
            except Exception:
                # A failing tick must not stop the next one; the log says why.
                log.exception("collector tick failed")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(ticker)
            if config.dashboard.enabled:
                tasks.start_soon(_warm_overview, pipeline, detection, list(config.sources))
            yield
            tasks.cancel_scope.cancel()
        await audit.flush(time.time() + 60)  # the current minute is over for us
        await account_audit.flush()
        accounts.close()
        boards.close()

    routes: list[BaseRoute] = [
        Route("/v1/events", ingest.handle, methods=["POST"]),
        Route("/v1/events", read.events, methods=["GET"]),
        Route("/v1/timeline", read.timeline, methods=["GET"]),
        Route("/v1/sources", read.source_status, methods=["GET"]),
        Route("/v1/dashboards", board_api.list, methods=["GET"]),
        Route("/v1/dashboards/{board_id}", board_api.get, methods=["GET"]),
        Route("/v1/ledger/checkpoint", read.checkpoint, methods=["GET"]),
        Route("/v1/ledger/proof/inclusion", read.inclusion, methods=["GET"]),
        Route("/v1/ledger/proof/consistency", read.consistency, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
    if detection is not None:
        routes += _alert_routes(detection, AlertEndpoints(
            detection.repository, pipeline, api_auth, audit), metrics)
    if config.dashboard.enabled:  # the dashboard (apiwatch.server.dashboard), after the API
        routes.append(build_dashboard(config, pipeline, detection, audit, accounts=accounts,
                                      account_audit=account_audit, boards=boards))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            HttpError: handle_http_error,
            HTTPException: handle_starlette_error,
            Exception: handle_internal_error,
        },
    )
    app.state.metrics = metrics
    return app


def _alert_routes(detection: Detection, alerts: AlertEndpoints,
                  metrics: Metrics) -> list[BaseRoute]:
    """The /v1/alerts routes; the outbox's deliveries counted in `metrics`."""
    detection.outbox.observers.append(lambda channel, ok: (
        metrics.alert_deliveries if ok else metrics.alert_delivery_failures
    ).labels(channel=channel).inc())
    return [
        Route("/v1/alerts", alerts.list, methods=["GET"]),
        Route("/v1/alerts/{alert_id}", alerts.get, methods=["GET"]),
        Route("/v1/alerts/{alert_id}/{action}", alerts.change, methods=["POST"]),
    ]
