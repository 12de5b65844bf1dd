"""Event identifiers: UUIDv7 (RFC 9562), time-ordered so ids sort by creation time."""

from __future__ import annotations

import random
import time

_VERSION_BITS = 0x7 << 76
_VARIANT_BITS = 0x2 << 62


def uuid7(ns: int | None = None) -> str:
    """A UUIDv7 string; 12 bits of sub-millisecond time keep ids from one process ordered.

    RFC 9562 section 6.2 method 3 (replace leftmost random bits with increased clock precision).
    The random part comes from the process PRNG (reseeded after fork): ids are unique, not secret.
    """
    if ns is None:
        ns = time.time_ns()
    ms, rem = divmod(ns, 1_000_000)
    sub_ms = (rem * 4096) // 1_000_000
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | _VERSION_BITS
        | sub_ms << 64
        | _VARIANT_BITS
        | random.getrandbits(62)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
