"""Who may send, and how much: tokens, signed batches, replay memory, rate limits.

Framework-free so each rule is unit-testable. A source presents its token as a bearer token and
signs `timestamp + "." + body` with it (`apiwatch.signing`); a timestamp outside the clock-skew
window is stale, and a signature seen inside the window is a replay. The classes here are used
from the event loop only, so they hold no locks.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from apiwatch.errors import ApiwatchError
from apiwatch.signing import SIGNATURE_PREFIX, signature_valid

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
#: A rate-limited sender may spend this many seconds' worth of its rate at once.
BURST_SECONDS = 10.0


class AuthFailure(ApiwatchError):
    """A request failed a check; `code` is the stable reason (never holds a secret)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (RFC 6750 section 2.1), or None."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class TokenTable:
    """Named secrets (source tokens, read tokens); finds a name by token in constant time.

    Every entry is compared, with `hmac.compare_digest` on SHA-256 digests (equal lengths), so
    the time taken says nothing about which token or how much of it matched.
    """

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = {name: token for name, token in tokens.items() if token}
        self._entries = [
            (name, hashlib.sha256(token.encode()).digest()) for name, token in self._tokens.items()
        ]

    def __len__(self) -> int:
        return len(self._entries)

    def identify(self, presented: str) -> str | None:
        """The name whose token is `presented`, or None."""
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for name, expected in self._entries:
            if hmac.compare_digest(expected, digest):
                found = name
        return found

    def token(self, name: str) -> str:
        """The secret of `name` (the HMAC key of its batches)."""
        return self._tokens[name]


def check_timestamp(text: str | None, now: float, skew: float) -> int:
    """The batch timestamp (unix seconds) if present and within `skew` seconds of `now`."""
    if text is None or not _TIMESTAMP.fullmatch(text):
        raise AuthFailure("bad_timestamp", "X-Apiwatch-Timestamp must be unix seconds")
    stamp = int(text)
    if abs(now - stamp) > skew:
        raise AuthFailure(
            "stale_timestamp", f"the batch timestamp is more than {skew:g} s from the collector's"
        )
    return stamp


def check_signature(token: str, timestamp: str, body: bytes, presented: str | None) -> str:
    """Verify the batch HMAC; returns the signature normalised (lower-case hex, no prefix)."""
    if presented is None:
        raise AuthFailure("bad_signature", "X-Apiwatch-Signature is missing")
    digest = presented.strip().removeprefix(SIGNATURE_PREFIX)
    if not _HEX_SIGNATURE.fullmatch(digest) or not signature_valid(
        token, timestamp, body, digest
    ):
        raise AuthFailure("bad_signature", "the batch signature does not match its body")
    return digest.lower()


class ReplayCache:
    """Signatures accepted recently, each kept until its timestamp leaves the skew window.

    Once an entry expires its batch is stale and refused anyway, so memory is bounded by the
    batches accepted in one window; `max_entries` bounds it absolutely (the entries closest to
    expiry go first, counted in `evicted`).

    What the cache cannot remember it refuses: signatures stamped before `since` (the start of
    the process: a restarted collector has forgotten what its predecessor accepted) or no later
    than an evicted entry's. The refusal asks the sender to sign again, which an honest sender
    does at once (`apiwatch.capture` does), so a replay never gets through.
    """

    def __init__(
        self, skew_seconds: float, max_entries: int = 100_000, *, since: float = -math.inf
    ) -> None:
        self.skew = skew_seconds
        self.max_entries = max_entries
        self.evicted = 0
        #: Signatures stamped earlier than this are refused (see the class docstring).
        self.floor = since
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def remember(self, signature: str, timestamp: int, now: float) -> bool:
        """Record `signature`; False if it was already seen (a replay)."""
        self._expire(now)
        if signature in self._expiry or timestamp < self.floor:
            return False
        while len(self._expiry) >= self.max_entries:
            expiry, oldest = heapq.heappop(self._heap)
            del self._expiry[oldest]
            self.evicted += 1
            self.floor = max(self.floor, expiry - self.skew + 1)
        if timestamp < self.floor:
            return False
        expiry = timestamp + self.skew
        self._expiry[signature] = expiry
        heapq.heappush(self._heap, (expiry, signature))
        return True

    def _expire(self, now: float) -> None:
        while self._heap and self._heap[0][0] < now:
            _, signature = heapq.heappop(self._heap)
            del self._expiry[signature]


class TokenBucket:
    """`rate` units per second, up to `rate * burst_seconds` saved up."""

    def __init__(self, rate: float, now: float, burst_seconds: float = BURST_SECONDS) -> None:
        self.rate = rate
        self.capacity = rate * burst_seconds
        self.tokens = self.capacity
        self._at = now

    def take(self, amount: int, now: float) -> float:
        """Spend `amount`; returns 0.0 if allowed, else the seconds until it would be.

        A request larger than the whole bucket is let through when the bucket is full (else it
        could never pass) and leaves it empty.
        """
        self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)
        cost = min(float(amount), self.capacity)
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per key (a configured source: the key set is bounded)."""

    def __init__(self, rate: float, burst_seconds: float = BURST_SECONDS) -> None:
        self.rate = rate
        self.burst_seconds = burst_seconds
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, amount: int, now: float) -> int:
        """0 if `key` may spend `amount` now, else whole seconds to wait (for Retry-After)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, now, self.burst_seconds)
        wait = bucket.take(amount, now)
        return 0 if wait == 0.0 else max(1, math.ceil(wait))


@dataclass(frozen=True)
class Suppressed:
    """Refusal events not written during closed minutes: how many, from how many peers."""

    events: int
    peers: int


class RefusalBudget:
    """At most `per_peer` refusal events per peer and `total` overall per clock minute.

    Refused requests are security events, but a flood of them must not fill the disk: past
    the budget they are only counted, and `take_summary` reports the count once the minute
    is over. Peers tracked per minute are capped too (`max_peers`), against address floods.
    """

    def __init__(self, per_peer: int = 10, total: int = 600, max_peers: int = 10_000) -> None:
        self.per_peer = per_peer
        self.total = total
        self.max_peers = max_peers
        self._minute = -1
        self._counts: dict[str, int] = {}
        self._written = 0
        self._suppressed = 0
        self._suppressed_peers: set[str] = set()
        self._pending = Suppressed(0, 0)

    def admit(self, peer: str, now: float) -> bool:
        """True if a refusal from `peer` at `now` may be written as an event."""
        self._roll(now)
        count = self._counts.get(peer, 0)
        known = peer in self._counts or len(self._counts) < self.max_peers
        if known and count < self.per_peer and self._written < self.total:
            self._counts[peer] = count + 1
            self._written += 1
            return True
        self._suppressed += 1
        if len(self._suppressed_peers) < self.max_peers:
            self._suppressed_peers.add(peer)
        return False

    def take_summary(self, now: float) -> Suppressed | None:
        """What was suppressed in minutes that have ended since the last call, or None."""
        self._roll(now)
        pending, self._pending = self._pending, Suppressed(0, 0)
        return pending if pending.events else None

    def _roll(self, now: float) -> None:
        minute = int(now // 60)
        if minute == self._minute:
            return
        self._pending = Suppressed(
            self._pending.events + self._suppressed,
            self._pending.peers + len(self._suppressed_peers),
        )
        self._minute = minute
        self._counts = {}
        self._written = 0
        self._suppressed = 0
        self._suppressed_peers = set()
