"""Every error the collector answers is JSON: `{"error": code, "detail": text}`.

Codes are stable identifiers a client can branch on; details are for people. Neither ever
carries a token or a signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from apiwatch.errors import ApiwatchError

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "rate_limited",
}


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON body written by orjson (the ingest path answers thousands of these a second)."""
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


class HttpError(ApiwatchError):
    """A request the collector answers with an error: status, stable code, human detail."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def response(self) -> Response:
        """The JSON answer: code and detail, plus any extra keys (the bad lines, say)."""
        body = {"error": self.code, "detail": self.detail, **self.extra}
        return json_response(body, self.status, self.headers)


async def handle_http_error(request: Request, exc: Exception) -> Response:
    """Starlette handler for `HttpError` raised by an endpoint."""
    if not isinstance(exc, HttpError):
        raise exc
    return exc.response()


async def handle_starlette_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 as JSON errors."""
    if not isinstance(exc, HTTPException):
        raise exc
    code = _STATUS_CODES.get(exc.status_code, "error")
    return json_response({"error": code, "detail": exc.detail}, exc.status_code, exc.headers)


async def handle_internal_error(request: Request, exc: Exception) -> Response:
    """An unexpected failure: a 500 that says nothing about the internals."""
    return json_response({"error": "internal", "detail": "the collector failed; see its log"}, 500)
