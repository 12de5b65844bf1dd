"""Event identifiers: UUIDv7 (RFC 9562), time-ordered so ids sort by creation time."""

from __future__ import annotations

import random
import time

_getrandbits = random.getrandbits
#: The 48-bit millisecond part and version nibble, formatted once per millisecond.
_prefix: list[tuple[int, str]] = [(-1, "")]


def uuid7(ns: int | None = None) -> str:
    """A UUIDv7 string; 12 bits of sub-millisecond time keep ids from one process ordered.

    RFC 9562 section 6.2 method 3 (replace leftmost random bits with increased clock precision).
    The random part comes from the process PRNG (reseeded after fork): ids are unique, not secret.
    """
    if ns is None:
        ns = time.time_ns()
    ms, rem = divmod(ns, 1_000_000)
    cached_ms, prefix = _prefix[0]
    if cached_ms != ms:
        h = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
        prefix = f"{h[:8]}-{h[8:]}-7"
        _prefix[0] = (ms, prefix)
    # sub-millisecond fraction (12 bits), variant 0b10, 62 random bits: 19 hex digits.
    tail = f"{(rem * 4096 // 1_000_000) << 64 | 0x8000_0000_0000_0000 | _getrandbits(62):019x}"
    return f"{prefix}{tail[:3]}-{tail[3:7]}-{tail[7:]}"
