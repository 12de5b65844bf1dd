"""POST /v1/events: signed NDJSON batches from sources, acknowledged once durable.

Checks run cheapest first, before any byte is decoded: bearer token, timestamp window, body
size (read with a hard bound), HMAC signature, replay memory, gzip with a hard bound on the
inflated size, line count and line sizes, the source's rate. Then every line is decoded; a bad
line refuses the whole batch (nothing is stored) unless the source asked for partial
acceptance. The answer comes only after `Pipeline.ingest` returns, i.e. after the ledger
append is durable, so a 200 is a promise and anything else means "send it again".
"""

from __future__ import annotations

import operator
import time
import zlib
from collections.abc import Sequence
from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from apiwatch.collector.pipeline import IngestResult, Pipeline
from apiwatch.config import ServerConfig
from apiwatch.ledger.errors import StorageError
from apiwatch.server.audit import Audit
from apiwatch.server.auth import (
    AuthFailure,
    RateLimiter,
    ReplayCache,
    TokenTable,
    bearer_token,
    check_signature,
    check_timestamp,
)
from apiwatch.server.errors import HttpError, json_response
from apiwatch.server.metrics import Metrics
from apiwatch.signing import PARTIAL_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from apiwatch.store.errors import StoreError

#: The bytes `bytes.strip` removes: a line of them only is blank.
_WHITE = frozenset(b" \t\n\r\x0b\x0c")
_FIRST_BYTE = operator.itemgetter(0)
#: Bad lines listed in an answer; the count is always given in full.
MAX_LISTED_LINES = 100
#: A plain body up to this size is cut into lines on the event loop (about a millisecond):
#: a hop to a worker thread and back costs the batch more than that in GIL hand-overs.
#: Larger bodies, and gzip ones (inflating is slow), are cut in a worker thread.
INLINE_SPLIT_BYTES = 1 << 20


class IngestEndpoint:
    """The handler of POST /v1/events and the state it keeps (replay memory, rate buckets)."""

    def __init__(
        self,
        config: ServerConfig,
        sources: TokenTable,
        pipeline: Pipeline,
        metrics: Metrics,
        audit: Audit,
    ) -> None:
        self.config = config
        self.sources = sources
        self.pipeline = pipeline
        self.metrics = metrics
        self.audit = audit
        # Nothing signed before this start is trusted: the previous process's memory is gone.
        # Whole seconds, as stamps are: a sender re-signing in this second is not refused.
        self.replays = ReplayCache(config.max_clock_skew_seconds, since=int(time.time()))
        self.rates = RateLimiter(config.rate_limit_events_per_second)

    async def handle(self, request: Request) -> Response:
        """Authenticate, bound, decode and store one batch; refusals are recorded as events."""
        self.metrics.in_flight.inc()
        source = None
        try:
            source = self._authenticate(request.headers.get("authorization"))
            return await self._ingest(request, source)
        except HttpError as exc:
            await self.audit.refused(request, exc.code, principal=source, extra=_refusal(exc))
            return exc.response()
        finally:
            self.metrics.in_flight.dec()

    async def _ingest(self, request: Request, source: str) -> Response:
        headers = request.headers
        now = time.time()
        stamp_text = headers.get(TIMESTAMP_HEADER)
        try:
            stamp = check_timestamp(stamp_text, now, self.config.max_clock_skew_seconds)
        except AuthFailure as exc:
            raise HttpError(401, exc.code, exc.detail) from None
        body = await self._read_body(request)
        try:
            digest = check_signature(
                self.sources.token(source), str(stamp_text), body, headers.get(SIGNATURE_HEADER)
            )
        except AuthFailure as exc:
            raise HttpError(401, exc.code, exc.detail) from None
        if not self.replays.remember(digest, stamp, now):
            raise HttpError(
                409, "replayed_batch", "this signature was already used; re-sign the batch"
            )
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity") and len(body) <= INLINE_SPLIT_BYTES:
            numbers, lines = self._split(body, encoding)
        else:
            numbers, lines = await to_thread.run_sync(self._split, body, encoding)
        self.metrics.received.labels(source=source).inc(len(lines))
        wait = self.rates.take(source, len(lines), now)
        if wait:
            raise HttpError(
                429, "rate_limited", f"source {source} is over its event rate",
                headers={"Retry-After": str(wait)},
            )
        partial = headers.get(PARTIAL_HEADER, "").strip() == "1"
        try:
            result, bad = await to_thread.run_sync(self._store, source, numbers, lines, partial)
        except StorageError as exc:
            # Nothing of the batch is in the ledger (the failed append was cut off again).
            raise HttpError(
                507, "storage_full", f"the ledger cannot write ({exc}); retry later",
                headers={"Retry-After": "30"},
            ) from None
        except StoreError as exc:
            # In the ledger or not, the batch was not acknowledged: a retry is safe (duplicates
            # are recognised by sequence number) and the store catches up from the ledger.
            raise HttpError(
                503, "store_unavailable", f"the batch could not be indexed ({exc}); retry it",
                headers={"Retry-After": "1"},
            ) from None
        self.metrics.accepted.labels(source=source).inc(result.accepted)
        self.metrics.duplicates.labels(source=source).inc(result.duplicates)
        answer: dict[str, Any] = {"accepted": result.accepted, "duplicates": result.duplicates}
        if bad:
            answer["rejected"] = bad[:MAX_LISTED_LINES]
            answer["rejected_count"] = len(bad)
            self.metrics.rejected_lines.labels(source=source).inc(len(bad))
            await self.audit.refused(
                request, "bad_lines", principal=source,
                extra={"apiwatch.dropped": len(bad)},
            )
        return json_response(answer)

    def _authenticate(self, authorization: str | None) -> str:
        token = bearer_token(authorization)
        if token is None:
            raise HttpError(401, "missing_token", "send Authorization: Bearer <source token>")
        source = self.sources.identify(token)
        if source is None:
            raise HttpError(401, "unknown_token", "the token is not a configured source's")
        return source

    async def _read_body(self, request: Request) -> bytes:
        limit = self.config.max_batch_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large("batch_too_large", f"a batch is at most {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large("batch_too_large", f"a batch is at most {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _split(self, body: bytes, encoding: str) -> tuple[Sequence[int], list[bytes]]:
        """Inflate (bounded) and cut into non-blank lines and their line numbers, enforcing
        the size limits."""
        data = _inflate(body, encoding, self.config.max_batch_bytes)
        lines = data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()  # the body's final line feed
        numbers: Sequence[int] = range(1, len(lines) + 1)
        # A line whose first byte is not white space is not blank: most bodies (JSON objects,
        # LF endings) are numbered and checked in a few C-level calls.
        if not lines or b"" in lines or b"\r" in data or not _WHITE.isdisjoint(
            map(_FIRST_BYTE, lines)
        ):
            numbered = [
                (number, raw.removesuffix(b"\r"))
                for number, raw in enumerate(lines, start=1)
                if raw.strip()
            ]
            numbers, lines = [number for number, _ in numbered], [raw for _, raw in numbered]
        if not lines:
            raise HttpError(400, "empty_batch", "the batch holds no events")
        if len(lines) > self.config.max_batch_events:
            raise _too_large(
                "too_many_events", f"a batch holds at most {self.config.max_batch_events} events"
            )
        limit = self.config.max_event_bytes
        if max(map(len, lines)) > limit:
            oversized = [
                number for number, line in zip(numbers, lines, strict=True) if len(line) > limit
            ]
            raise _too_large(
                "event_too_large", f"an event is at most {limit} bytes",
                extra={"lines": oversized[:MAX_LISTED_LINES]},
            )
        return numbers, lines

    def _store(
        self, source: str, numbers: Sequence[int], lines: list[bytes], partial: bool
    ) -> tuple[IngestResult, list[dict[str, Any]]]:
        """Decode every line, then store the batch (or only its good lines when partial)."""
        result, errors = self.pipeline.ingest_json(source, lines, numbers, partial=partial)
        bad = [
            {"line": exc.line, "field": exc.field, "detail": exc.detail} for exc in errors
        ]
        if result is None:
            raise HttpError(
                400, "bad_lines", f"{len(bad)} line(s) could not be decoded; nothing was stored",
                extra={"lines": bad[:MAX_LISTED_LINES], "rejected_count": len(bad)},
            )
        return result, bad


def _too_large(code: str, detail: str, extra: dict[str, Any] | None = None) -> HttpError:
    return HttpError(413, code, detail, extra=extra)


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """The body decoded per Content-Encoding, never more than `limit` bytes (zip bombs)."""
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise HttpError(415, "unsupported_encoding", "Content-Encoding must be gzip or identity")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing only (RFC 1952)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise HttpError(400, "bad_gzip", "the body is not valid gzip") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise _too_large("decompressed_too_large", f"a batch inflates to at most {limit} bytes")
    if not inflater.eof or inflater.unused_data:
        raise HttpError(400, "bad_gzip", "the gzip body is truncated or has trailing data")
    return data


def _refusal(exc: HttpError) -> dict[str, Any]:
    """Event fields describing a refused batch (how many lines were bad, if that was why)."""
    count = exc.extra.get("rejected_count")
    return {"apiwatch.dropped": count} if isinstance(count, int) else {}
