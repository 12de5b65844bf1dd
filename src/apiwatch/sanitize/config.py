"""`SanitizeConfig`: what the sanitizer redacts, keeps, drops and caps (the `[sanitize]` table)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from apiwatch.errors import ConfigError
from apiwatch.events.fields import FieldType, field_type

#: Headers whose value is always replaced (configured names are added to these).
DEFAULT_REDACT_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-xsrf-token",
        "x-access-token",
        "x-amz-security-token",
        "x-goog-api-key",
        "api-key",
    }
)
#: Default length caps per field type, in characters; a field name in `max_len` overrides.
DEFAULT_MAX_LEN: Mapping[FieldType, int] = {
    FieldType.KEYWORD: 1024,
    FieldType.TEXT: 8192,
    FieldType.KEYWORDS: 1024,
    FieldType.DATE: 1024,
    FieldType.IP: 1024,
}
#: The smallest cap accepted: the truncation marker alone takes up to ~30 characters.
MIN_MAX_LEN = 64
MIN_FINGERPRINT_KEY = 16
_NAME_SETS = (
    "redact_headers",
    "redact_keys",
    "allow_keys",
    "deny_keys",
    "allow_fields",
    "deny_fields",
)


@dataclass(frozen=True)
class SanitizeConfig:
    """Sanitizer settings. Header and key names are case-insensitive.

    `fingerprint_key`: the per-deployment HMAC key for API key fingerprints; None uses a random
    key per process (fingerprints are then stable only within the process).
    `redact_headers`, `redact_keys`: added to the built-in lists.
    `allow_keys` / `allow_fields`: never redacted (neutralization still applies).
    `deny_keys` / `deny_fields`: always dropped. Deny wins over allow.
    `max_len`: caps by field name, on top of `DEFAULT_MAX_LEN` by type.
    """

    fingerprint_key: bytes | None = None
    redact_headers: frozenset[str] = DEFAULT_REDACT_HEADERS
    redact_keys: frozenset[str] = frozenset()
    allow_keys: frozenset[str] = frozenset()
    deny_keys: frozenset[str] = frozenset()
    allow_fields: frozenset[str] = frozenset()
    deny_fields: frozenset[str] = frozenset()
    max_len: Mapping[FieldType, int] = field(default_factory=lambda: dict(DEFAULT_MAX_LEN))
    max_len_fields: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SanitizeConfig:
        """Build from the TOML `[sanitize]` table; a ConfigError names any bad key or value.

        `fingerprint_key` is a string of at least 16 characters (its UTF-8 bytes are the key);
        `max_len` is a table whose keys are field types (`keyword`, `text`, ...) or field names.
        """
        known = {"fingerprint_key", "max_len", *_NAME_SETS}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"sanitize: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        kwargs: dict[str, Any] = {}
        if "fingerprint_key" in data:
            kwargs["fingerprint_key"] = _fingerprint_key(data["fingerprint_key"])
        for name in _NAME_SETS:
            if name in data:
                kwargs[name] = _names(name, data[name])
        if "redact_headers" in kwargs:
            kwargs["redact_headers"] = DEFAULT_REDACT_HEADERS | kwargs["redact_headers"]
        if "max_len" in data:
            by_type, by_field = _max_len(data["max_len"])
            kwargs["max_len"] = {**DEFAULT_MAX_LEN, **by_type}
            kwargs["max_len_fields"] = by_field
        return cls(**kwargs)


def _fingerprint_key(value: Any) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes):
        raise ConfigError("sanitize.fingerprint_key: expected a string")
    if len(value) < MIN_FINGERPRINT_KEY:
        raise ConfigError(
            f"sanitize.fingerprint_key: too short ({len(value)} bytes); use at least"
            f" {MIN_FINGERPRINT_KEY}, e.g. from `python -c 'import secrets;"
            " print(secrets.token_hex(32))'`"
        )
    return value


def _names(name: str, value: Any) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ConfigError(f"sanitize.{name}: expected a list of strings")
    if not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"sanitize.{name}: every entry must be a non-empty string")
    if name.endswith("_fields"):
        return frozenset(value)
    return frozenset(item.lower() for item in value)


def _max_len(value: Any) -> tuple[dict[FieldType, int], dict[str, int]]:
    if not isinstance(value, Mapping):
        raise ConfigError("sanitize.max_len: expected a table of name = integer")
    types = {ftype.value: ftype for ftype in DEFAULT_MAX_LEN}
    by_type: dict[FieldType, int] = {}
    by_field: dict[str, int] = {}
    for key, cap in value.items():
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < MIN_MAX_LEN:
            raise ConfigError(
                f"sanitize.max_len.{key}: expected an integer >= {MIN_MAX_LEN}, got {cap!r}"
            )
        if key in types:
            by_type[types[key]] = cap
        elif field_type(key) is not None:
            by_field[key] = cap
        else:
            raise ConfigError(f"sanitize.max_len.{key}: not a field type nor a known field")
    return by_type, by_field
