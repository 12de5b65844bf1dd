"""API keys become stable keyed fingerprints: the event can say which key, never the key.

`id` is `ak_` + the first 16 hex digits (64 bits) of HMAC-SHA256(deployment key, api key)
(RFC 2104). Keyed, so a reader of the logs cannot confirm a guessed key offline without the
deployment's fingerprint key; stable, so detection can count failures per key across restarts
when the key is configured. 64 bits make an accidental collision between two keys of one API
negligible (birthday bound ~2^32 keys).

`prefix` is the first 6 characters of the key, kept only when the key has at least 20
characters: at least 14 characters then stay unknown (>= 80 bits for a random base62 key), and
the prefix usually names the key's type (`sk_liv`, `ghp_Ab`), which helps an operator find it.
A shorter key gets no prefix.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX_LEN = 6
MIN_LEN_FOR_PREFIX = 20
_ID_PREFIX = "ak_"
_ID_HEX = 16
_LOWER_HEX = "0123456789abcdef"


def looks_like_fingerprint(value: str) -> bool:
    """True if `value` has the shape of a fingerprint id (`ak_` + 16 lower-case hex digits)."""
    return (
        len(value) == len(_ID_PREFIX) + _ID_HEX
        and value.startswith(_ID_PREFIX)
        and not value[len(_ID_PREFIX) :].strip(_LOWER_HEX)
    )


class Fingerprinter:
    """Fingerprints API keys under one HMAC key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, api_key: str) -> tuple[str, str]:
        """Return `(id, prefix)`; `prefix` is empty for keys shorter than 20 characters."""
        data = api_key.encode("utf-8", "surrogatepass")
        digest = hmac.new(self._key, data, hashlib.sha256).hexdigest()
        prefix = api_key[:PREFIX_LEN] if len(api_key) >= MIN_LEN_FOR_PREFIX else ""
        return _ID_PREFIX + digest[:_ID_HEX], prefix
