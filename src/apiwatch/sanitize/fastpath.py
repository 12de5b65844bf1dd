"""The per-field half of the sanitizer's fast path: would sanitizing leave these fields as they are?

The byte half (`Sanitizer.bytes_clean`, `lines_clean`) has already found the event's JSON text
printable ASCII, with nothing shaped like a secret but for the formats whose tokens `-`, `_`,
`.`, `/` or `+` may cut into short runs (`secrets._SHORT_RUN_KINDS`). What is left to see:

- no value longer than the smallest length cap;
- no sensitive key in free text and URLs (the fields with a key redactor);
- no raw API key (a fingerprint holds none);
- no string, in any field but allowed ones (user names, ids, list items alike), that format
  redaction would change: one with the literal hint of such a format (`glpat-`, `Bearer`...).

Most strings hold none of the characters the hints are found by (`secrets.format_hints_to_seek`:
ids, timestamps, addresses); those that repeat (vocabulary, user names) are remembered once
found clean; a string that holds a hint is checked by the detectors themselves (a user name
`task-list` holds `sk-` and no key), once. Three entry points, one verdict:

- `CleanFields.event`, one event (`Sanitizer.__call__`): a memo lookup of the strings of its
  fields that repeat, of the JSON of its lists, and a one-pass look at the JSON of the rest;
- `CleanFields.batch`, events of one shape: a field at a time over all of them (one `zip`, then a
  `str.join` per field, a field that holds one value all along looked at once): on the
  collector's traffic a quarter of the instructions per event of `event`;
- `CleanFields.verdicts`, a batch of any shapes: a shape at a time.

True is exact; False only means "call the sanitizer" (hypothesis tests hold the verdicts of
the three equal, and the fast path equal to the full one).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from apiwatch.events.fields import FIELDS, FieldType
from apiwatch.events.model import Event
from apiwatch.sanitize.fingerprint import looks_like_fingerprint
from apiwatch.sanitize.redact import (
    KeyPolicy,
    Redactor,
    no_keys,
    redact_query,
    redact_text,
    redactor_for,
)
from apiwatch.sanitize.secrets import (
    ANCHOR_TABLE,
    format_hints_to_seek,
    has_format_hint,
    redact_formats,
)

API_KEY_ID = "apiwatch.api_key.id"
#: How many clean values, and of what length, a memo holds.
MEMO_SIZE = 4096
_MEMO_MAX_LEN = 256
#: Fields by the kind of check their values get in a batch: strings (keywords, addresses: the
#: default), dates, lists of strings, numbers. In an event `formats.jsonl` decoded, neither
#: numbers nor dates (RFC 3339: digits and `-:.+TZtz `, no anchor) hold a format hint.
_KINDS: dict[FieldType | None, FieldType] = {
    FieldType.DATE: FieldType.DATE,
    FieldType.KEYWORDS: FieldType.KEYWORDS,
    FieldType.LONG: FieldType.LONG,
    FieldType.FLOAT: FieldType.LONG,
    FieldType.BOOLEAN: FieldType.LONG,
}
_NUMBERS = frozenset({int, float, bool, type(None)})
#: Fields whose values change with every event (besides dates and addresses): checked for
#: anchors each time rather than looked up in a memo. Where a field goes decides only what its
#: check costs, never whether it is checked.
_PER_EVENT = frozenset({"event.id", "trace.id", "span.id", "transaction.id", "http.request.id"})
#: Fewer events of one shape than this are judged one by one (`CleanFields.verdicts`).
_FEW = 4

Getter = Callable[[Event], tuple[Any, ...]]


class FieldChecks(NamedTuple):
    """What the fast path looks at in the fields of events of one shape (tuple of keys)."""

    #: Free text and URLs: the fields that may hold sensitive keys (name, position in the
    #: shape), with how to find them.
    keys: tuple[tuple[str, int, Redactor], ...]
    #: The position of the API key's field, or -1.
    api_key: int
    #: Getters of the values (a tuple; None for no field) of every other field but allowed
    #: ones, whose strings are checked for format hints: fields of strings that repeat (looked
    #: up in a memo), of lists (their JSON looked up), and the rest (numbers, dates, addresses,
    #: ids: their JSON looked at for anchors).
    repeating_of: Getter | None
    lists_of: Getter | None
    rest_of: Getter | None
    #: The same fields by position and kind, for `CleanFields.batch`: strings, dates, lists
    #: of strings, numbers.
    strings: tuple[int, ...]
    dates: tuple[int, ...]
    lists: tuple[int, ...]
    numbers: tuple[int, ...]
    #: The strings that repeat of the last event of the shape found clean (in a list of one:
    #: state kept per shape). An app's events often hold the very same values.
    last: list[tuple[Any, ...]]


def field_checks(shape: tuple[str, ...], allow_fields: Collection[str]) -> FieldChecks:
    """The checks of events with the keys `shape`, in order (none for `allow_fields`)."""
    keys: list[tuple[str, int, Redactor]] = []
    names: dict[str, list[str]] = {"repeating": [], "lists": [], "rest": []}
    positions: dict[FieldType, list[int]] = {kind: [] for kind in FieldType}
    for position, key in enumerate(shape):
        if key in allow_fields or key == API_KEY_ID:
            continue
        ftype = FIELDS.get(key)
        redactor = redactor_for(key, ftype)
        if redactor is not no_keys:
            keys.append((key, position, redactor))
            continue
        kind = _KINDS.get(ftype, FieldType.KEYWORD)
        positions[kind].append(position)
        if kind is FieldType.KEYWORDS:
            names["lists"].append(key)
        elif kind is FieldType.KEYWORD and key not in _PER_EVENT and ftype is not FieldType.IP:
            names["repeating"].append(key)
        else:
            names["rest"].append(key)
    return FieldChecks(
        keys=tuple(keys),
        api_key=shape.index(API_KEY_ID) if API_KEY_ID in shape else -1,
        repeating_of=_getter(names["repeating"]),
        lists_of=_getter(names["lists"]),
        rest_of=_getter(names["rest"]),
        strings=tuple(positions[FieldType.KEYWORD]),
        dates=tuple(positions[FieldType.DATE]),
        lists=tuple(positions[FieldType.KEYWORDS]),
        numbers=tuple(positions[FieldType.LONG]),
        last=[()],
    )


class CleanFields:
    """The per-field checks under one key policy, with their memos of clean values."""

    def __init__(self, policy: KeyPolicy, min_cap: int) -> None:
        self._policy = policy
        self._min_cap = min_cap
        # Free-text and URL values found clean, by how keys are found in them.
        self._texts: dict[Redactor, set[str]] = {
            redactor: set() for redactor in (redact_query, redact_text)
        }
        # Other strings found clean (those that repeat), and lists of them (their JSON).
        self._words: set[str] = set()
        self._lists: set[bytes] = set()

    def event(self, event: Event, size: int, checks: FieldChecks | None) -> bool:
        """Whether sanitizing leaves the fields of `event` as they are (`size` bounds the
        length of any value; `checks` are those of its shape, None if it may not be judged)."""
        if checks is None or (size > self._min_cap and _has_long_value(event, self._min_cap)):
            return False
        for name, _, redactor in checks.keys:
            value = event.get(name)
            if type(value) is str and value in self._texts[redactor]:
                continue
            if not self._texts_clean(_strings_of((value,)), redactor):
                return False
        if not self._words_clean(event, checks):
            return False
        # Absent, or a fingerprint (whose `ak_` and hex digits hold no format hint).
        api_key = event.get(API_KEY_ID)
        return api_key is None or (type(api_key) is str and looks_like_fingerprint(api_key))

    def batch(
        self, events: Sequence[Event], size: int, checks: FieldChecks | None, *, decoded: bool
    ) -> bool:
        """`event` of every one of `events`, which all have the keys of `events[0]` in its
        order, judged a field at a time. With `decoded`, the events are ones `formats.jsonl`
        decoded (each field's values of its type): numbers and dates are not looked at. False
        only means "judge them one by one"."""
        if checks is None or (
            size > self._min_cap and any(map(_has_long_value, events, repeat(self._min_cap)))
        ):
            return False
        columns = list(zip(*map(dict.values, events), strict=True))
        for _, position, redactor in checks.keys:
            found = _column_strings(columns[position])
            if found is None or not self._texts_clean(found[1], redactor):
                return False
        if checks.api_key >= 0:
            keys = columns[checks.api_key]
            if set(map(type, keys)) != {str} or not all(map(looks_like_fingerprint, set(keys))):
                return False
        if not decoded:
            for position in checks.numbers:
                if not _NUMBERS.issuperset(map(type, columns[position])):
                    return False
        for position in checks.strings + checks.lists + (() if decoded else checks.dates):
            found = _column_strings(columns[position])
            if found is None or not self._column_clean(*found):
                return False
        return True

    def verdicts(
        self,
        events: Sequence[Event],
        sizes: Sequence[int],
        checks_of: Callable[[tuple[str, ...]], FieldChecks | None],
        *,
        decoded: bool,
    ) -> list[tuple[tuple[str, ...], bool]]:
        """For each of `events`, its keys and `event` of it (`sizes[i]` bounds the values of
        `events[i]`; `checks_of` gives the checks of a shape), judged a shape at a time
        (`batch`, `decoded` as there) for the shapes a few of them share."""
        shapes = list(map(tuple, events))
        groups: dict[tuple[str, ...], list[int]] = {}
        for position, shape in enumerate(shapes):
            groups.setdefault(shape, []).append(position)
        clean = [False] * len(events)
        for shape, rows in groups.items():
            checks = checks_of(shape)
            if checks is None:
                continue
            members = list(map(events.__getitem__, rows))
            bounds = list(map(sizes.__getitem__, rows))
            verdicts: Iterable[bool]
            if len(rows) >= _FEW and self.batch(members, max(bounds), checks, decoded=decoded):
                verdicts = repeat(True)
            else:  # a few events, or one that needs a closer look: event by event
                verdicts = map(self.event, members, bounds, repeat(checks))
            for row, verdict in zip(rows, verdicts, strict=False):
                clean[row] = verdict
        return list(zip(shapes, clean, strict=True))

    def _texts_clean(self, texts: Sequence[str] | None, redactor: Redactor) -> bool:
        """Whether the full path leaves each of `texts`, strings of a field with keys found by
        `redactor`, as it is (None: something else the fast path does not judge)."""
        if texts is None:
            return False
        memo = self._texts[redactor]
        new = set(texts).difference(memo)
        if not new:
            return True
        policy = self._policy
        for value in new:
            if redactor(value, policy)[1]:
                return False
        if not _formats_keep_all("\n".join(new), new):
            return False
        for value in new:
            _remember(memo, value)
        return True

    def _words_clean(self, event: Event, checks: FieldChecks) -> bool:
        """Whether format redaction leaves the strings of `event` outside its free text and
        URLs as they are: in a few C-level calls when nothing is new (its strings that repeat
        are those of the last event found clean or are remembered, its lists are remembered
        too, and the rest holds no anchor)."""
        repeating_of, lists_of, rest_of = checks.repeating_of, checks.lists_of, checks.rest_of
        try:
            repeating = () if repeating_of is None else repeating_of(event)
            if (
                # The very strings of the last event found clean (an app's constants), or
                # strings remembered clean.
                (repeating == checks.last[0] or self._words.issuperset(repeating))
                and (lists_of is None or orjson.dumps(lists_of(event)) in self._lists)
                and (
                    rest_of is None or 1 not in orjson.dumps(rest_of(event)).translate(ANCHOR_TABLE)
                )
            ):
                checks.last[0] = repeating
                return True
        except (TypeError, orjson.JSONEncodeError):  # unhashable, or not JSON
            pass
        # Something new: every string not remembered looked at, then what the test above
        # looks up remembered (the strings that repeat, and the lists).
        getters = (getter for getter in (repeating_of, lists_of, rest_of) if getter is not None)
        found = _strings_of(chain.from_iterable(getter(event) for getter in getters))
        if found is None:
            return False
        new = set(found).difference(self._words)
        if new and not _formats_keep_all("\n".join(new), new):
            return False
        if repeating_of is not None:
            for value in repeating_of(event):
                if isinstance(value, str):
                    _remember(self._words, value)
        if lists_of is not None:
            _remember(self._lists, orjson.dumps(lists_of(event)))
        return True

    def _column_clean(self, text: str, words: Collection[str]) -> bool:
        """Whether format redaction leaves each of `words`, a field's strings over a batch, as
        it is (`text` is them joined by line feeds): hints sought only for the anchors `text`
        holds (in the values not remembered when there are many to seek), and the values that
        hold one looked at one by one, once."""
        hints = format_hints_to_seek(text)
        if not hints:
            return True
        memo = self._words
        if len(hints) > 2 and len(words) > 1:
            words = set(words).difference(memo)
            text = "\n".join(words)
        for hint in hints:
            if hint in text:
                break
        else:
            return True
        for value in set(words).difference(memo):
            if not _formats_keep(value):
                return False
            _remember(memo, value)
        return True


def _has_long_value(event: Event, cap: int) -> bool:
    for value in event.values():
        if isinstance(value, str):
            if len(value) > cap:
                return True
        elif isinstance(value, list | tuple) and any(
            isinstance(i, str) and len(i) > cap for i in value
        ):
            return True
    return False


def _formats_keep(value: str) -> bool:
    """Whether format redaction leaves `value` (printable ASCII, no long runs) as it is."""
    return not has_format_hint(value) or not redact_formats(value)[1]


def _formats_keep_all(text: str, values: Iterable[str]) -> bool:
    """`_formats_keep` of each of `values`, `text` being them joined by line feeds: the hints
    sought once in `text`, the values one by one only if one is there."""
    for hint in format_hints_to_seek(text):
        if hint in text:
            return all(map(_formats_keep, values))
    return True


def _remember(memo: set[Any], value: str | bytes) -> None:
    """Add `value` to a memo of clean values, which never grows past `MEMO_SIZE`."""
    if len(value) <= _MEMO_MAX_LEN:
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo.add(value)


def _getter(names: list[str]) -> Getter | None:
    """`itemgetter(*names)`, a tuple of the values even for one name; None for none."""
    if len(names) > 1:
        return itemgetter(*names)
    if not names:
        return None
    name = names[0]

    def get(event: Event) -> tuple[Any, ...]:
        return (event[name],)

    return get


def _column_strings(column: Sequence[Any]) -> tuple[str, Sequence[str]] | None:
    """The strings of `column`, one field's values over a batch (strings, or lists of them),
    the value once when it is the same all along, with them joined by line feeds; None if it
    holds anything else."""
    first = column[0]
    try:
        text = "\n".join(column)  # a column of strings, the common case: one C call
    except TypeError:
        # Lists: the same list all along (the common case) is one look; a list equals only a
        # list.
        if column.count(first) == len(column):
            column = (first,)
        if set(map(type, column)) != {list}:
            return None
        items = list(chain.from_iterable(column))
        try:
            return "\n".join(items), items
        except TypeError:
            return None
    size = len(first) + 1
    if len(text) == size * len(column) - 1 and text + "\n" == (first + "\n") * len(column):
        return first, (first,)  # vocabulary, a constant: one look
    return text, column


def _strings_of(values: Iterable[Any]) -> list[str] | None:
    """The strings among `values` and in their lists; None if one holds what the full path
    changes or looks into otherwise (a tuple, a mapping, a list in a list)."""
    found: list[str] = []
    for value in values:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    found.append(item)
                elif isinstance(item, list | tuple | Mapping):
                    return None
        elif isinstance(value, tuple | Mapping):
            return None
    return found
