"""Redaction by name: sensitive keys in query strings, form bodies, JSON bodies and free text.

A key is normalized (lower case, `-`, `.` and spaces become `_`) and is sensitive when it
contains one of the sensitive parts (`password`, `secret`, `token`, `_key`...) or equals one of
the short sensitive names (`key`, `pass`, `code`, `sig`...), in the spirit of sentry-python's
default denylist and detect-secrets' keyword plugin. `allow_keys` are never redacted;
`deny_keys` are dropped outright (and redacted in free text, where there is nothing to drop).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from apiwatch.events.fields import LABELS_PREFIX, FieldType
from apiwatch.sanitize.neutralize import TRUNCATION_MARKER
from apiwatch.sanitize.secrets import REDACTED

#: Substrings of a normalized key that make it sensitive (the marker names the first that hit).
SENSITIVE_PARTS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "api_key",
    "private_key",
    "privatekey",
    "credential",
    "signature",
    "session",
    "cookie",
    "authorization",
    "pwd",
    "card_number",
    "cardnumber",
    "contrasena",
    "contraseña",
    "_key",
)
#: Normalized keys that are sensitive only as a whole word (`key` but not `keyboard`).
SENSITIVE_NAMES: frozenset[str] = frozenset(
    {"key", "pass", "pin", "sig", "code", "auth", "jwt", "sid", "otp", "cvv", "cvc", "pan", "ssn"}
)
#: Keys whose value is an Authorization header: the `authorization` detector keeps the scheme.
_AUTHORIZATION = frozenset({"authorization", "proxy_authorization"})
MAX_DEPTH = 32
_DEPTH_MARKER = "[TRUNCATED:depth]"
#: Values that are already one of our markers: redacting them again would change nothing
#: worth hiding and would break idempotence (a cut value ends in `…[truncated N chars]`).
_MARKER_PREFIX = ("[REDACTED", TRUNCATION_MARKER.split("{", 1)[0])


def normalize_key(key: str) -> str:
    """Lower case with `-`, `.` and spaces as `_`: `X-Api-Key` and `x_api_key` are one key."""
    return key.lower().replace("-", "_").replace(".", "_").replace(" ", "_")


@dataclass(frozen=True)
class KeyPolicy:
    """Which keys are redacted, kept or dropped; all names are compared normalized."""

    extra: frozenset[str] = frozenset()
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    _cache: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    def verdict(self, key: str) -> str | None:
        """None to keep the value, `"deny"` to drop it, else the kind for the redaction marker."""
        cached = self._cache.get(key)
        if cached is not None or key in self._cache:
            return cached
        verdict = self._decide(normalize_key(key))
        if len(self._cache) < 4096:  # keys are attacker-chosen: bound the memo
            self._cache[key] = verdict
        return verdict

    def _decide(self, name: str) -> str | None:
        if name in self.deny:
            return "deny"
        if name in self.allow:
            return None
        if name in SENSITIVE_NAMES:
            return name
        for part in (*SENSITIVE_PARTS, *self.extra):
            if part in name:
                return part.strip("_")
        return None


def redact_pairs(text: str, policy: KeyPolicy) -> tuple[str, list[str]]:
    """Redact sensitive values in `a=1&b=2` (query strings, form bodies); drop denied pairs.

    Keys are percent-decoded before they are judged (`pass%77ord`); values are left as sent.
    """
    kinds: list[str] = []
    out: list[str] = []
    changed = False
    for pair in text.split("&"):
        key, sep, value = pair.partition("=")
        verdict = policy.verdict(unquote_plus(key)) if key else None
        if verdict == "deny":
            changed = True
            kinds.append("deny")
            continue
        if verdict is not None and value and not value.startswith(_MARKER_PREFIX):
            out.append(f"{key}{sep}{REDACTED.format(verdict)}")
            kinds.append(verdict)
            changed = True
        else:
            out.append(pair)
    return ("&".join(out) if changed else text), kinds


def redact_url(url: str, policy: KeyPolicy) -> tuple[str, list[str]]:
    """Redact the query part of a URL or request target (`/path?a=1#frag`)."""
    head, question, rest = url.partition("?")
    if not question:
        return url, []
    query, hash_sign, fragment = rest.partition("#")
    query, kinds = redact_pairs(query, policy)
    return head + question + query + hash_sign + fragment, kinds


# A key and its separator; the value (quoted, also JSON-escaped `\"...\"`, or bare) is matched by a
# lookahead, so a value that is not redacted is still scanned for keys (`error: password=x`).
_KV = re.compile(
    # `=` and `:` alone never begin `=>` / `:=`: backtracking into them made a second pass
    # redact the `>` of `password=>[REDACTED:...]` (a redacted line must be a fixed point).
    r"""(?P<key>[A-Za-z_][\w.-]{0,63})\\?["']?[ \t]{0,3}(?:=>|:=|=(?!>)|:(?!=))[ \t]{0,3}"""
    r"""(?=\\?(?P<quote>["'])(?P<quoted>(?:\\.|[^"'\\]){1,1024})(?P=quote)"""
    r"""|(?P<bare>[^\s"'&,;}\]\[]{1,1024}))"""
)


def redact_text(text: str, policy: KeyPolicy) -> tuple[str, list[str]]:
    """Redact values of sensitive keys in free text: `password=x`, `"token": "y"`, `key: z`."""
    if "=" not in text and ":" not in text:
        return text, []
    kinds: list[str] = []
    pieces: list[str] = []
    done = 0
    for match in _KV.finditer(text):
        key = match.group("key")
        if match.start() < done or normalize_key(key) in _AUTHORIZATION:
            continue  # inside a value already redacted; or left to the `authorization` detector
        verdict = policy.verdict(key)
        group = "quoted" if match.group("quoted") is not None else "bare"
        if verdict is None or text.startswith(_MARKER_PREFIX, match.start(group)):
            continue
        start, end = match.span(group)
        pieces += (text[done:start], REDACTED.format(verdict))
        kinds.append(verdict)
        done = end
    if not kinds:
        return text, []
    pieces.append(text[done:])
    return "".join(pieces), kinds


def redact_query(text: str, policy: KeyPolicy) -> tuple[str, list[str]]:
    """A query string or URL field: its pairs, then whatever else a client put there.

    Clients do send JSON or `key: value` text in a query string; the free-text pass catches
    keys the pair syntax does not (values already redacted carry the marker and are skipped).
    """
    text, kinds = (redact_url if "?" in text else redact_pairs)(text, policy)
    text, more = redact_text(text, policy)
    return text, kinds + more


#: How sensitive keys are found in a string, and which: `(text, kinds redacted)`.
Redactor = Callable[[str, "KeyPolicy"], tuple[str, list[str]]]


def no_keys(text: str, policy: KeyPolicy) -> tuple[str, list[str]]:
    """The redactor of a field that holds no keys (a keyword: a user name, an id)."""
    return text, []


#: How sensitive keys are found in a field: a whole query string, a URL, or free text.
_KEY_REDACTOR: dict[str, Redactor] = {
    "url.query": redact_query,
    "url.original": redact_query,
    "http.request.referrer": redact_query,
}


def redactor_for(name: str, ftype: FieldType | None) -> Redactor:
    """How keys are found in the field `name` (of type `ftype`, None if unknown): free text,
    labels and unknown fields as text, URL fields as query strings, others not at all."""
    known = _KEY_REDACTOR.get(name)
    if known is not None:
        return known
    if ftype is FieldType.TEXT or ftype is None or name.startswith(LABELS_PREFIX):
        return redact_text
    return no_keys


def redact_json(obj: Any, policy: KeyPolicy, text: Any, depth: int = 0) -> Any:
    """Redact a decoded JSON value: sensitive keys at any depth, `text` applied to every string.

    `text` is the string sanitizer (neutralize + formats + free text) of the caller. Keys are
    neutralized like strings; nesting deeper than 32 levels is replaced by a marker.
    """
    if depth > MAX_DEPTH:
        return _DEPTH_MARKER
    if isinstance(obj, str):
        return text(obj)
    if isinstance(obj, Mapping):
        result: dict[str, Any] = {}
        for key, value in obj.items():
            name = str(key)
            verdict = policy.verdict(name)
            if verdict == "deny":
                continue
            if verdict is not None and value is not None:
                result[text(name)] = REDACTED.format(verdict)
            else:
                result[text(name)] = redact_json(value, policy, text, depth + 1)
        return result
    if isinstance(obj, list | tuple):
        return [redact_json(item, policy, text, depth + 1) for item in obj]
    return obj


def header_items(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> Iterable[tuple[str, str]]:
    """The (name, value) pairs of a mapping or of an iterable of pairs (ASGI style)."""
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def redact_authorization(value: str) -> str:
    """`Bearer abc` -> `Bearer [REDACTED]`: the scheme is useful to a reader, the rest is not."""
    scheme, space, credentials = value.strip().partition(" ")
    if space and credentials and scheme.isascii() and scheme.isalpha():
        return f"{scheme} [REDACTED]"
    return "[REDACTED]"
