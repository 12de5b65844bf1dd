"""Neutralizing log injection (CWE-117): every dangerous character becomes visible escaped text.

"Dangerous" is every character for which `str.isprintable()` is False: the Unicode categories
Cc (C0 and C1 controls, DEL, NUL, ESC of ANSI sequences), Cf (bidi overrides and isolates,
zero-width characters, the BOM), Zl and Zp (U+2028, U+2029), Zs other than the ASCII space
(look-alike spaces), Cs (lone surrogates, e.g. from bytes decoded with `surrogateescape`), Co and
Cn. One C call (`isprintable`) decides, so clean strings cost almost nothing.

Escapes are Python's: `\\t`, `\\n`, `\\r`, `\\xNN`, `\\uNNNN`, `\\UNNNNNNNN`.

The backslash. Escaping is applied only to a string that contains a dangerous character, and
then every backslash in that string is doubled too, so an escaped string decodes unambiguously
(every `\\` in it starts an escape). A clean string is returned unchanged, even when it holds
a literal backslash. This keeps the sanitizer idempotent (sanitizing twice changes nothing) and
clean values byte-identical to what the API saw. The cost: a clean value may contain the text
`\\n` typed by an attacker; it is printable text and no viewer turns it into a line break, but a
reader cannot tell from the value alone whether it was escaped. An injective escaping that is
also idempotent is impossible (it would be the identity), so we chose idempotence.
"""

from __future__ import annotations

import re

#: Everything except printable ASCII other than the backslash: the candidates for escaping.
_CANDIDATE = re.compile(r"[^ -\[\]-~]")
_NAMED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}

#: Length of the longest escape (`\\UNNNNNNNN`); truncation never cuts inside one.
MAX_ESCAPE_LEN = 10
TRUNCATION_MARKER = "…[truncated {} chars]"
_WORD_BACKOFF = 256
_REDACTION_MARKER = "[REDACTED"


def _escape_char(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape_match(match: re.Match[str]) -> str:
    char = match.group()
    if char != "\\" and char.isprintable():
        return char
    return _escape_char(char)


def neutralize(text: str) -> str:
    """Return `text` with every non-printable character escaped; a clean `text` is returned as is.

    Only escaping, no redaction. The result is printable (`isprintable()` is True), so a second
    call returns it unchanged.
    """
    if text.isprintable():
        return text
    return _CANDIDATE.sub(_escape_match, text)


def _is_word(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


def truncate(text: str, limit: int, *, escaped: bool, dropped_before: int = 0) -> str:
    """Cut `text` to at most `limit` characters, ending with a visible truncation marker.

    The marker says how many characters were dropped (`dropped_before` counts characters removed
    earlier, before sanitizing). The cut never splits an escape sequence of an `escaped` string
    (so the tail cannot be misread), a redaction marker, nor a word shorter than 256 characters
    (so a cut cannot turn a harmless long token into a shorter one that matches a secret format
    on a second pass).
    """
    cut = truncation_point(text, limit, escaped=escaped, dropped_before=dropped_before)
    return text[:cut] + TRUNCATION_MARKER.format(len(text) - cut + dropped_before)


def truncation_point(text: str, limit: int, *, escaped: bool, dropped_before: int = 0) -> int:
    """How many characters of `text` `truncate` keeps (same arguments)."""
    total = len(text) + dropped_before
    # Never past the end: after a pre-cut and redaction the text may be shorter than `limit`.
    cut = min(len(text), max(0, limit - len(TRUNCATION_MARKER.format(total))))
    if 0 < cut < len(text) and _is_word(text[cut]) and _is_word(text[cut - 1]):
        start, end = cut - 1, cut + 1
        while start > 0 and end - start < _WORD_BACKOFF and _is_word(text[start - 1]):
            start -= 1
        while end < len(text) and end - start < _WORD_BACKOFF and _is_word(text[end]):
            end += 1
        if end - start < _WORD_BACKOFF:
            cut = start
    # Nor a redaction marker: half a marker reads as a value and would be redacted again.
    marker = text.rfind(_REDACTION_MARKER, 0, cut + len(_REDACTION_MARKER) - 1)
    if 0 <= marker < cut and text.find("]", marker) >= cut:
        cut = marker
    if escaped:
        cut = _escape_boundary(text, cut)
    return cut


def _escape_boundary(text: str, cut: int) -> int:
    """Move `cut` back to the start of an escape sequence it would split (escaped text only)."""
    for back in range(1, MAX_ESCAPE_LEN):
        pos = cut - back
        if pos < 0 or text[pos] != "\\":
            continue
        run = 1  # backslashes ending at pos; an odd run means pos starts an escape
        while pos - run >= 0 and text[pos - run] == "\\":
            run += 1
        if run % 2 == 1 and pos + len(_sequence_at(text, pos)) > cut:
            return pos
        return cut
    return cut


def _sequence_at(text: str, pos: int) -> str:
    """The escape sequence starting at the backslash `text[pos]`."""
    kind = text[pos + 1 : pos + 2]
    length = {"x": 4, "u": 6, "U": 10}.get(kind, 2)
    return text[pos : pos + length]
