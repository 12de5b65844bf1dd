"""The `Sanitizer`: a structlog-style processor that makes one event safe to store and show.

Per string field, in this order: neutralize (CWE-117 escaping), redact (secret formats, then
sensitive keys in query strings and free text), cap the length. Raw API keys in
`apiwatch.api_key.id` become fingerprints. Redacted and truncated field names are listed in
`apiwatch.redacted` and `apiwatch.truncated`.

Every string, in any field (free text, URLs, keywords such as `user.name`, list items), is
searched for secret formats when it looks suspicious (long runs of letters and digits, see
`secrets.bytes_look_suspicious`) or holds the literal hint of a format whose tokens `-`, `_`,
`.`, `/` or `+` may cut into short runs (`glpat-`, `Bearer`: `secrets.has_format_hint`).

Fast path: a clean event (the common case) is recognised without sanitizing it. The JSON
encoding of its values (one orjson call) is tested with `isascii`, a few substring searches and
two byte-class translations (`bytes_clean`; `lines_clean` for a batch of decoded lines at once);
then its fields (`fields_clean`, in `sanitize.fastpath`): no value too long, no sensitive key in
free text or URLs, no raw API key, and no string that holds a format hint the detectors would act
on, with small bounded memos of the values found clean. A batch of events of one shape has its
fields checked a field at a time (`fields_clean_batch`, `fields_verdicts`): the collector's and
capture's batches. Anything unusual takes the full path, which produces the same result for a
clean event (hypothesis tests hold the paths equal).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from apiwatch.events.fields import FIELDS, FieldType
from apiwatch.events.model import Event
from apiwatch.sanitize.config import DEFAULT_REDACT_HEADERS, SanitizeConfig
from apiwatch.sanitize.fastpath import (
    API_KEY_ID,
    MEMO_SIZE,
    CleanFields,
    FieldChecks,
    field_checks,
)
from apiwatch.sanitize.fingerprint import Fingerprinter, looks_like_fingerprint
from apiwatch.sanitize.neutralize import (
    TRUNCATION_MARKER,
    neutralize,
    truncate,
    truncation_point,
)
from apiwatch.sanitize.redact import (
    KeyPolicy,
    Redactor,
    header_items,
    normalize_key,
    redact_authorization,
    redact_json,
    redact_pairs,
    redact_text,
    redactor_for,
)
from apiwatch.sanitize.secrets import (
    bytes_look_suspicious,
    has_format_hint,
    lines_look_suspicious,
    looks_suspicious,
    redact_formats,
)

#: One random fingerprint key per process, used when the deployment configures none.
_PROCESS_KEY = os.urandom(32)
_SCALARS = (int, float, bool)
API_KEY_PREFIX = "apiwatch.api_key.prefix"
REDACTED_FIELD = "apiwatch.redacted"
TRUNCATED_FIELD = "apiwatch.truncated"
#: Rounds of cutting and redacting what is kept (`Sanitizer._cut`); one or two in practice.
_CUT_ROUNDS = 8

# What shows a mapping as a value in JSON text without backslashes (so quotes delimit strings
# exactly): `{` right after `:`, `[` or `,`. Keeping only those bytes, with `[` and `,` read as
# `:`, and the quotes and line feeds that end strings and lines, leaves `:{` wherever the text
# has one, in a third of the text: one search instead of three (1.5 -> 0.5 us per event line).
# A string holding `,{` shows too; its event then merely takes the slower path.
_STRUCTURE = bytes(0x3A if chr(i) in "[," else i for i in range(256))
_NOT_STRUCTURE = bytes(i for i in range(256) if chr(i) not in ':[,{"\n')


class Sanitizer:
    """Neutralize, redact and cap every string of an event; fingerprint raw API keys."""

    def __init__(self, config: SanitizeConfig | None = None) -> None:
        self.config = config = config or SanitizeConfig()
        self._policy = KeyPolicy(
            extra=frozenset(normalize_key(key) for key in config.redact_keys),
            allow=frozenset(normalize_key(key) for key in config.allow_keys),
            deny=frozenset(normalize_key(key) for key in config.deny_keys),
        )
        self._fingerprint = Fingerprinter(config.fingerprint_key or _PROCESS_KEY)
        self._headers = frozenset(
            normalize_key(name) for name in DEFAULT_REDACT_HEADERS | config.redact_headers
        )
        self._caps = {
            name: config.max_len_fields.get(name, config.max_len[ftype])
            for name, ftype in FIELDS.items()
            if ftype in config.max_len
        }
        self._default_cap = config.max_len[FieldType.KEYWORD]
        self._text_cap = config.max_len[FieldType.TEXT]
        self._min_cap = min([self._default_cap, *self._caps.values()])
        # What the fast path checks in events of a shape (the tuple of their keys), and the
        # per-field checks with their memos of clean values.
        self._shapes: dict[tuple[str, ...], FieldChecks | None] = {}
        self._fields = CleanFields(self._policy, self._min_cap)

    # -- events ---------------------------------------------------------------------------

    def __call__(self, event: Event) -> Event:
        """Return the sanitized event (the same dict, changed in place)."""
        try:
            data = orjson.dumps(list(event.values()))
        except (TypeError, orjson.JSONEncodeError):
            return self._full(event)
        return event if self._is_clean(event, data) else self._full(event)

    def bytes_clean(self, data: bytes) -> bool:
        """The byte-level half of the fast path, on JSON text: nothing non-ASCII, no escape (a
        control character, a quote or a backslash in a value), no mapping inside a list, and
        nothing shaped like a secret (`secrets.bytes_look_suspicious`)."""
        return (
            data.isascii()
            and b"\\" not in data
            and b"[{" not in data  # a mapping as a value (first) or inside a list
            and b",{" not in data  # a mapping as a later value
            and not bytes_look_suspicious(data)
        )

    def lines_clean(self, lines: Sequence[bytes], joined: bytes | None = None) -> bool:
        """`bytes_clean` of each of `lines` at once, for lines that `formats.jsonl.decode_line`
        took (whose lists hold only strings): True if it holds for every one of them. For a
        whole batch of lines this costs less than line by line. `joined`, if the caller has
        it, is `b"\\n".join(lines)`."""
        text = b"\n".join(lines) if joined is None else joined
        return text.isascii() and b"\\" not in text and not lines_look_suspicious(lines, text)

    def encoded_clean(self, events: Sequence[Event], lines: Sequence[bytes]) -> bool:
        """True if sanitizing would leave every one of `events` unchanged, judged from `lines`:
        the JSON object of each event (`orjson.dumps`, no line feed). The fast path for a batch
        that is encoded anyway: one pass of the byte test over all lines, keys included (a
        mapping as a value shows as `:{`, `[{` or `,{`, since without a backslash no string
        holds a quote), then `fields_clean` per event."""
        text = b"\n".join(lines)
        if b":{" in text.translate(_STRUCTURE, _NOT_STRUCTURE) or not self.lines_clean(lines, text):
            return False
        verdicts = self.fields_verdicts(events, list(map(len, lines)), self.field_checks)
        return all(clean for _, clean in verdicts)

    def _is_clean(self, event: Event, data: bytes) -> bool:
        """The fast path: `data`, the JSON of the event's values, shows nothing to change."""
        return self.bytes_clean(data) and self.fields_clean(
            event, len(data), self.field_checks(tuple(event))
        )

    def fields_clean(self, event: Event, size: int, checks: FieldChecks | None) -> bool:
        """The per-field half of the fast path (`sanitize.fastpath`): no value too long, no
        sensitive key in free text or URLs, no raw API key, and no string in any field that
        format redaction would change (one with the hint of a format the byte test can miss,
        `secrets.has_format_hint`). `size` bounds the length of any value (the length of the
        line `event` was decoded from, say); `checks` is `field_checks(tuple(event))`.

        With `bytes_clean` (or `lines_clean`) of the event's JSON text, True means sanitizing
        would return the event unchanged; False only means "call the sanitizer".
        """
        return self._fields.event(event, size, checks)

    def fields_clean_batch(
        self, events: Sequence[Event], size: int, checks: FieldChecks | None, *, decoded: bool
    ) -> bool:
        """`fields_clean` of every one of `events`, which all have the keys of `events[0]` in
        its order (`checks` is `field_checks` of them; `size` bounds every value), judged a
        field at a time over all of them: for many events of one shape this costs a fraction
        of event by event. With `decoded`, the events are ones `formats.jsonl` decoded (each
        field's values of its type). False only means "judge them one by one"."""
        return self._fields.batch(events, size, checks, decoded=decoded)

    def fields_verdicts(
        self,
        events: Sequence[Event],
        sizes: Sequence[int],
        checks_of: Callable[[tuple[str, ...]], FieldChecks | None],
        *,
        decoded: bool = False,
    ) -> list[tuple[tuple[str, ...], bool]]:
        """For each of `events`, its keys and `fields_clean` of it (`sizes[i]` as `size` there
        for `events[i]`; `checks_of` gives the checks of a shape: `field_checks`, or a stricter
        one), judged a shape at a time for the shapes a few of them share
        (`fields_clean_batch`, `decoded` as there): a batch may mix shapes."""
        return self._fields.verdicts(events, sizes, checks_of, decoded=decoded)

    def field_checks(self, shape: tuple[str, ...]) -> FieldChecks | None:
        """For events with the keys `shape` (in order), what the fast path checks in their
        fields (`fastpath.FieldChecks`); None if a key itself is unsafe (denied,
        unprintable). Remembered per shape: events come in a few shapes."""
        if shape in self._shapes:
            return self._shapes[shape]
        checks: FieldChecks | None = None
        deny = self.config.deny_fields
        if all(key.isprintable() and key not in deny for key in shape):
            checks = field_checks(shape, self.config.allow_fields)
        if len(self._shapes) >= MEMO_SIZE:
            self._shapes.clear()
        self._shapes[shape] = checks
        return checks

    def _full(self, event: Event) -> Event:
        """Sanitize field by field; the reference behaviour the fast path must agree with."""
        redacted: list[str] = []
        truncated: list[str] = []
        result: Event = {}
        for key, value in event.items():
            if key in self.config.deny_fields:
                continue
            name = neutralize(key)
            if name in self.config.deny_fields:
                continue
            if name == API_KEY_ID and isinstance(value, str) and not looks_like_fingerprint(value):
                result[name], prefix = self._fingerprint(value)
                redacted.append(name)
                if prefix and API_KEY_PREFIX not in event:
                    result[API_KEY_PREFIX] = neutralize(prefix)
            else:
                result[name] = self._value(name, value, redacted, truncated)
        _merge(result, REDACTED_FIELD, redacted)
        _merge(result, TRUNCATED_FIELD, truncated)
        event.clear()
        event.update(result)
        return event

    def _value(self, name: str, value: Any, redacted: list[str], truncated: list[str]) -> Any:
        if isinstance(value, str):
            return self._string(name, value, redacted, truncated)
        if isinstance(value, list | tuple):
            return [
                self._string(name, item, redacted, truncated)
                if isinstance(item, str)
                else redact_json(item, self._policy, self.text)
                for item in value
            ]
        if isinstance(value, Mapping):  # not ECS-shaped; sanitized like a JSON body
            return redact_json(value, self._policy, self.text)
        return value

    def _string(self, name: str, value: str, redacted: list[str], truncated: list[str]) -> str:
        redactor = None
        if name not in self.config.allow_fields:
            redactor = redactor_for(name, FIELDS.get(name))
        text, kinds, cut = self._sanitize(value, self._caps.get(name, self._default_cap), redactor)
        if kinds and name not in redacted:
            redacted.append(name)
        if cut and name not in truncated:
            truncated.append(name)
        return text

    def _sanitize(
        self, value: str, cap: int, redactor: Redactor | None
    ) -> tuple[str, list[str], bool]:
        """Neutralize, redact (unless `redactor` is None), cap: `(text, kinds, truncated)`."""
        # Bound the work on huge values; the cut part is counted in the truncation marker.
        precut = max(0, len(value) - 2 * cap)
        raw = value[: 2 * cap] if precut else value
        text = neutralize(raw)
        kinds: list[str] = []
        if redactor is not None:
            text, kinds = self._redact(text, redactor)
        cut = bool(precut) or len(text) > cap
        if cut:
            text, more = self._cut(text, cap, text is not raw, precut, redactor)
            kinds += more
        return text, kinds, cut

    def _cut(
        self, text: str, cap: int, escaped: bool, precut: int, redactor: Redactor | None
    ) -> tuple[str, list[str]]:
        """`truncate` the redacted `text` to `cap`, what it keeps redacted again: a secret
        that the text after the cut hid from a detector (a card number followed by `²` or `.`,
        which its pattern reads as part of a longer token) stands alone once cut off. Returns
        the text and the kinds redacted in this round."""
        kinds: list[str] = []
        for _ in range(_CUT_ROUNDS):
            at = truncation_point(text, cap, escaped=escaped, dropped_before=precut)
            kept, more = self._redact(text[:at], redactor) if redactor else (text[:at], [])
            if kept == text[:at]:
                return truncate(text, cap, escaped=escaped, dropped_before=precut), kinds
            kinds += more
            text = kept + text[at:]
        # Still finding secrets after that many cuts: keep nothing rather than risk one.
        return TRUNCATION_MARKER.format(len(text) + precut), kinds

    def _redact(self, text: str, redactor: Redactor) -> tuple[str, list[str]]:
        kinds: list[str] = []
        # Every string is also searched for the hints of formats the run pre-check can miss
        # (`glpat-ab-cd_...`): a user name can be a token too. `fields_clean` does the same.
        if not text.isascii() or looks_suspicious(text) or has_format_hint(text):
            text, kinds = redact_formats(text)
        text, more = redactor(text, self._policy)
        return text, kinds + more

    # -- pieces an adapter sanitizes before it builds an event -----------------------------

    def text(self, text: str) -> str:
        """Sanitize free text: neutralize, redact secrets and `key=value` secrets, cap."""
        return self._sanitize(text, self._text_cap, redact_text)[0]

    def query(self, query: str) -> str:
        """Sanitize a query string (`a=1&password=x`)."""
        return self._sanitize(query, self._text_cap, redact_pairs)[0]

    def form(self, body: str) -> str:
        """Sanitize an `application/x-www-form-urlencoded` body."""
        return self._sanitize(body, self._text_cap, redact_pairs)[0]

    def json_body(self, obj: Any) -> Any:
        """Sanitize a decoded JSON body: sensitive keys at any depth, every string as text."""
        return redact_json(obj, self._policy, self.text)

    def headers(
        self, headers: Mapping[str, str] | Iterable[tuple[str, str]]
    ) -> dict[str, str]:
        """Sanitize request or response headers; repeated names are joined with `, `.

        Authorization-like headers keep their scheme (`Bearer [REDACTED]`); other sensitive
        headers become `[REDACTED]`; every other value is sanitized as text.
        """
        result: dict[str, str] = {}
        for name, value in header_items(headers):
            key = normalize_key(name)
            verdict = self._policy.verdict(name)
            if verdict == "deny":
                continue
            if key in self._headers and key not in self._policy.allow:
                authorization = key.endswith("authorization")
                clean = redact_authorization(value) if authorization else "[REDACTED]"
            elif verdict is not None:
                clean = "[REDACTED]"
            else:
                clean = self.text(value)
            label = neutralize(name)
            result[label] = f"{result[label]}, {clean}" if label in result else clean
        return result

    def fingerprint(self, api_key: str) -> tuple[str, str]:
        """`(id, prefix)` for `apiwatch.api_key.id` and `.prefix`; see `sanitize.fingerprint`."""
        key_id, prefix = self._fingerprint(api_key)
        return key_id, neutralize(prefix)


def _merge(event: Event, name: str, additions: list[str]) -> None:
    if not additions:
        return
    existing = event.get(name)
    current = list(existing) if isinstance(existing, list) else []
    event[name] = current + [item for item in additions if item not in current]
