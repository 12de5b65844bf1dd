"""Batch signatures between a source and the collector.

A source signs `timestamp + "." + body` (the body bytes exactly as sent, compressed or not) with
HMAC-SHA256 keyed by its token. The timestamp bounds how long a captured batch can be replayed;
the collector also remembers recent signatures. Shared by the shipper (signing) and the
collector (verifying), so both sides agree on the bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Apiwatch-Timestamp"
SIGNATURE_HEADER = "X-Apiwatch-Signature"
PARTIAL_HEADER = "X-Apiwatch-Partial"
SIGNATURE_PREFIX = "sha256="


def signature(token: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of `timestamp.body` under `token`."""
    mac = hmac.new(token.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return mac.hexdigest()


def sign_batch(token: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers that authenticate `body`: bearer token, timestamp and signature."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Authorization": f"Bearer {token}",
        TIMESTAMP_HEADER: ts,
        SIGNATURE_HEADER: SIGNATURE_PREFIX + signature(token, ts, body),
    }


def signature_valid(token: str, timestamp: str, body: bytes, presented: str) -> bool:
    """Constant-time check of a presented signature (with or without the `sha256=` prefix)."""
    presented = presented.removeprefix(SIGNATURE_PREFIX)
    return hmac.compare_digest(signature(token, timestamp, body), presented.lower())
