"""Event identifiers: UUIDv7 (RFC 9562), time-ordered so ids sort by creation time."""

from __future__ import annotations

import random
import time

_getrandbits = random.getrandbits
#: The 48-bit millisecond part and version nibble, formatted once per millisecond.
_prefix: list[tuple[int, str]] = [(-1, "")]
_LOW48 = (1 << 48) - 1


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
    # Sub-millisecond fraction (12 bits); variant 0b10 and 14 random bits; 48 random bits. One
    # %-format of small integers: a fifth faster than formatting one 76-bit integer and slicing.
    rand = _getrandbits(62)
    return "%s%03x-%04x-%012x" % (  # noqa: UP031 - measured faster than an f-string here
        prefix, rem * 4096 // 1_000_000, rand >> 48 | 0x8000, rand & _LOW48
    )
