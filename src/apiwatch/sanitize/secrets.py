"""Secrets recognised by their format, wherever they appear in a string.

Patterns follow gitleaks' rules (gitleaks/gitleaks `config/gitleaks.toml`, MIT) and the
detect-secrets plugins, simplified for Python `re` and made a little wider (gitleaks allowlists
`...EXAMPLE` values; a log redactor must not). Each detector has literal `hints`: its regex runs
only on text that contains one of them, so a clean string costs a few `str.__contains__` calls.

Card numbers (PAN) are digit runs of 13 to 19 digits, optionally grouped by spaces or dashes,
that pass the Luhn check (ISO/IEC 7812-1).

`looks_suspicious` is the event-level prefilter: one pass over all string values joined, cheap
enough to run on every event; only when it says yes does the sanitizer run the detectors field by
field. It relies on long runs of letters and digits, which the tokens of some formats need not
have (`glpat-ab-cd_ef-...`, `Bearer ab.cd/ef+...`): every string is also searched for the
literal hints of those (`has_format_hint`), and to keep that cheap each hint is sought only in
text that holds its anchor, a character rare in field values (`format_hints_to_seek`).

The prefilter's byte scan has two implementations that give the same verdicts: `_scan_py`,
the reference, and `_prefilter.scan` in C (a tenth of the cost), used when the package was
built with a C compiler (`pip install` builds it where one is available).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_native_scan: (
    Callable[[bytes, bytes, bytes, tuple[bytes, ...], int, int, int, int, bytes], int] | None
)
try:
    from apiwatch.sanitize._prefilter import scan as _native_scan
except ImportError:  # built without a C compiler: the Python reference gives the same verdicts
    _native_scan = None

REDACTED = "[REDACTED:{}]"
_MARKER_PREFIX = "[REDACTED"


@dataclass(frozen=True, slots=True)
class Detector:
    """One secret format: a name for the marker, literal hints, and the regex.

    If the regex has a group named `secret`, only that group is replaced (an `Authorization`
    scheme or a URL's scheme and host stay visible); otherwise the whole match is.
    """

    kind: str
    hints: tuple[str, ...]
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] | None = None


def luhn_ok(number: str) -> bool:
    """True if the digits of `number` (separators ignored) pass the Luhn check."""
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if index % 2 == 1 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


_B64URL = r"[A-Za-z0-9_-]"
_END = r"(?![A-Za-z0-9_-])"

DETECTORS: tuple[Detector, ...] = (
    Detector(
        "private_key",
        ("PRIVATE KEY",),
        re.compile(
            r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
            r"(?:.*?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----|.*)",
            re.DOTALL,
        ),
    ),
    Detector(
        "jwt",
        ("eyJ",),
        re.compile(rf"\beyJ{_B64URL}{{8,}}\.{_B64URL}{{8,}}(?:\.{_B64URL}*){{1,3}}={{0,2}}"),
    ),
    Detector(
        "aws_access_key",
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        re.compile(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    ),
    Detector(
        "github_token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_\w{22,255})"),
    ),
    Detector("gitlab_token", ("glpat-",), re.compile(r"\bglpat-[\w-]{20,}")),
    Detector(
        "slack_webhook",
        ("hooks.slack.com",),
        re.compile(
            r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}"
        ),
    ),
    Detector("slack_token", ("xox",), re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{10,}")),
    Detector(
        "stripe_key",
        ("k_live_", "k_test_", "k_prod_"),
        re.compile(rf"\b[rsp]k_(?:live|test|prod)_[A-Za-z0-9]{{10,99}}{_END}"),
    ),
    Detector("anthropic_key", ("sk-ant-",), re.compile(rf"\bsk-ant-{_B64URL}{{20,}}")),
    Detector(
        "openai_key", ("sk-",), re.compile(rf"\bsk-(?:proj-|svcacct-|admin-)?{_B64URL}{{20,}}")
    ),
    Detector("google_api_key", ("AIza",), re.compile(rf"\bAIza{_B64URL}{{35}}")),
    Detector("pypi_token", ("pypi-AgE",), re.compile(rf"pypi-AgE{_B64URL}{{50,}}")),
    Detector("npm_token", ("npm_",), re.compile(rf"\bnpm_[A-Za-z0-9]{{36}}{_END}")),
    Detector(
        "sendgrid_key",
        ("SG.",),
        re.compile(rf"\bSG\.{_B64URL}{{16,32}}\.{_B64URL}{{16,64}}"),
    ),
    Detector("twilio_key", ("SK",), re.compile(r"\bSK[0-9a-fA-F]{32}\b")),
    Detector(
        "azure_client_secret",
        ("Q~",),
        re.compile(r"(?<![\w~.])[\w~.]{3}\dQ~[\w~.-]{31,34}(?![\w~.-])"),
    ),
    Detector(
        "authorization",
        ("uthorization", "UTHORIZATION"),
        re.compile(
            r"(?i:authorization)[\"']?\s{0,3}[:=]\s{0,3}[\"']?(?:[A-Za-z][\w-]{1,20}\s+)?"
            r"(?P<secret>[^\s\"',;]+)"
        ),
    ),
    Detector(
        "bearer",
        ("earer", "EARER"),
        re.compile(r"\b(?i:bearer)\s+(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)"),
    ),
    Detector(
        "url_credentials",
        ("@",),
        re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{0,30}://(?P<secret>[^\s/?#@:\"']*:[^\s/?#@\"']*)@"),
    ),
    Detector(
        "card_number",
        ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
        re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w.-])"),
        luhn_ok,
    ),
)


def _replace(detector: Detector) -> Callable[[re.Match[str]], str]:
    marker = REDACTED.format(detector.kind)
    named = "secret" in detector.pattern.groupindex

    def replace(match: re.Match[str]) -> str:
        whole = match.group()
        secret = match.group("secret") if named else whole
        if secret.startswith(_MARKER_PREFIX):
            return whole
        if detector.valid is not None and not detector.valid(secret):
            return whole
        if not named:
            return marker
        start, end = match.span("secret")
        base = match.start()
        return whole[: start - base] + marker + whole[end - base :]

    return replace


_REPLACERS = tuple((detector, _replace(detector)) for detector in DETECTORS)


#: Formats whose secrets can be cut into runs of fewer than 13 letters and digits by `-`, `_`,
#: `.`, `/` or `+`, so that `bytes_look_suspicious` may pass them by (an AWS key cannot be).
_SHORT_RUN_KINDS = frozenset({
    "private_key", "jwt", "github_token", "gitlab_token", "slack_webhook", "slack_token",
    "stripe_key", "anthropic_key", "openai_key", "google_api_key", "pypi_token", "sendgrid_key",
    "bearer",
})
_SHORT_RUN_HINTS = tuple(
    sorted({hint for d in DETECTORS if d.kind in _SHORT_RUN_KINDS for hint in d.hints})
)
#: The characters the hints are found by: each hint is sought only in text that holds its
#: anchor, the first of these it contains (rarest in field values first). None is a digit nor
#: a hex letter: ids, hashes, timestamps and addresses hold none, so a text of them costs nine
#: `memchr`s and no search.
_ANCHORS = "VJRIGxkgr"


def _by_anchor() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The hints to search for by anchor; a hint holding another one (`sk-ant-`) is left out."""
    hints = [h for h in _SHORT_RUN_HINTS if not any(o != h and o in h for o in _SHORT_RUN_HINTS)]
    anchor_of = {hint: next(a for a in _ANCHORS if a in hint) for hint in hints}
    return tuple(
        (anchor, tuple(h for h in hints if anchor_of[h] == anchor)) for anchor in _ANCHORS
    )


_HINTS_BY_ANCHOR = _by_anchor()
_HINTS_OF_ANCHOR = {ord(anchor): list(hints) for anchor, hints in _HINTS_BY_ANCHOR}
#: The anchors as 1, every other byte as 0: `1 in data.translate(ANCHOR_TABLE)` says in one
#: pass (and a `memchr`) whether ASCII or UTF-8 `data` can hold a format hint.
ANCHOR_TABLE = bytes(1 if chr(i) in _ANCHORS else 0 for i in range(256))
#: Up to this many characters, a pass of `bytes.translate` costs less than nine `memchr`s.
_SHORT_TEXT = 256


def has_format_hint(text: str) -> bool:
    """Whether `text` holds the literal hint of a format whose secrets may have no long run
    (`glpat-`, `Bearer`, ...): every string is checked for these besides the run pre-check.
    Strings joined by line feeds can be checked at once (no hint holds one)."""
    for anchor, hints in _HINTS_BY_ANCHOR:
        if anchor in text:
            for hint in hints:
                if hint in text:
                    return True
    return False


def format_hints_to_seek(text: str) -> list[str]:
    """The format hints `text` may hold: those whose anchor it holds (`has_format_hint` is
    True if one of them is in `text`). Empty for most text: ids, timestamps and addresses hold
    no anchor. A short text is looked at in one pass (`bytes.translate`), a long one with a
    `memchr` per anchor."""
    found: list[str] = []
    if len(text) <= _SHORT_TEXT:
        data = text.encode("utf-8", "surrogatepass")
        if 1 in data.translate(ANCHOR_TABLE):
            for byte in set(data).intersection(_HINTS_OF_ANCHOR):
                found += _HINTS_OF_ANCHOR[byte]
        return found
    for anchor, hints in _HINTS_BY_ANCHOR:
        if anchor in text:
            found += hints
    return found


def redact_formats(text: str) -> tuple[str, list[str]]:
    """Replace every secret recognised by format in `text`; return the text and the kinds found."""
    kinds: list[str] = []
    for detector, replace in _REPLACERS:
        for hint in detector.hints:
            if hint in text:
                break
        else:
            continue
        redacted = detector.pattern.sub(replace, text)
        if redacted != text:
            kinds.append(detector.kind)
            text = redacted
    return text, kinds


# The event-level prefilter works on bytes mapped to classes. `_CLASSES`: ASCII letters and
# digits become `a`, controls NUL, `~` stays (Azure secrets), everything else becomes `.`;
# `_LINE_CLASSES` is the same but for the line feed, a separator there (lines joined by it).
# `_DIGITS`: digits, spaces and `-` become `0`, everything else `.`: a card, written in groups
# (`4111 1111 ...`) or not, lies in one run of `0`s, at the same offsets as in the text.
_CLASSES = bytes(
    0x61 if chr(i).isascii() and chr(i).isalnum()
    else 0x00 if i < 0x20 or i == 0x7F
    else i if chr(i) == "~"
    else 0x2E
    for i in range(256)
)
_LINE_CLASSES = _CLASSES[:0x0A] + b"." + _CLASSES[0x0B:]
_DIGITS = bytes(0x30 if chr(i).isdigit() or chr(i) in " -" else 0x2E for i in range(256))
_RUN = b"a" * 13
_CARD_DIGITS = 13  # the fewest digits of a card number
_CARD_MAX_DIGITS = 19  # the most, as `_CARD_SHAPE` has them (the C scan follows the pattern)
_CARD = b"0" * _CARD_DIGITS
#: The card detector's pattern, on bytes: the pre-check only ever sees ASCII, where `\w` and `\d`
#: mean the same on bytes as on text.
_CARD_SHAPE = re.compile(
    next(d for d in DETECTORS if d.kind == "card_number").pattern.pattern.encode("ascii")
)
_HEX_BYTES = b"0123456789abcdefABCDEF"
#: No dictionary word is this long; a letters-only run this long is a key (a PEM body line).
_LONG_WORD = 40
#: Prefixes of secrets that may be all letters (no digit to set them apart from words).
_ALPHA_PREFIXES_BYTES = (
    b"AKIA", b"ASIA", b"ABIA", b"ACCA", b"A3T", b"AIza", b"eyJ", b"SK", b"xox", b"pypi",
)
_URL_CREDENTIALS = re.compile(rb"://[^\s/?#@:\"']*:[^\s/?#@\"']*@")


def looks_suspicious(joined: str) -> bool:
    """Cheap test on all string values joined by spaces: could any detector match?

    `joined` must be ASCII; see `bytes_look_suspicious`.
    """
    return bytes_look_suspicious((" " + joined + " ").encode("ascii"))


def bytes_look_suspicious(data: bytes) -> bool:
    """Cheap test on ASCII text that starts and ends with a separator: could a detector match?

    False means no control character is present and no detector should match: every format
    secret has a run of 13+ letters and digits that is neither plain hex nor a plain word, or is
    a card-shaped digit group, an Azure `~` secret or credentials in a URL. (A bearer token with
    no such run, like `Bearer ab.cd`, is caught by name only: `Authorization` headers and keys.)
    True means run the detectors field by field. Cost: one pass of the C scan, which also
    looks for the card detector's pattern where a run of digits is long enough (or the Python
    reference's translations and searches), and the URL pattern only where both `://` and `@`
    are; the sanitizer runs it on an event's JSON encoding.
    """
    return _suspicious(data, _CLASSES)


def lines_look_suspicious(lines: Sequence[bytes], joined: bytes | None = None) -> bool:
    """`bytes_look_suspicious` of each of `lines` (JSON lines, no line feed in them) in one
    pass over all of them: False means False for every line, at a fraction of the calls.
    `joined`, if the caller has it, is `b"\\n".join(lines)`."""
    text = b"\n".join(lines) if joined is None else joined
    return _suspicious(text, _LINE_CLASSES)


#: `_scan_py`'s verdicts: _SUSPICIOUS, or _CLEAN with the flag of what to look at closer.
_CLEAN, _SUSPICIOUS, _URL_SHAPE = 0, 1, 4
_KEYWORD = b"authorization"  # introduces a credential of any shape


def _scan_py(data: bytes, table: bytes) -> int:
    """The prefilter's scan of `data` (lines joined by line feeds, or one line), its bytes
    mapped by `table`: _SUSPICIOUS for a control character, a `~`, a long letter/digit run
    that could be a secret or a card number (`_has_card`); else _CLEAN, plus _URL_SHAPE if
    `://` and `@` are there (for the URL pattern). The reference `_prefilter.scan` must agree
    with."""
    classes = data.translate(table)
    if 0 in classes or 0x7E in classes:  # a control character, or `~`
        return _SUSPICIOUS
    start = classes.find(_RUN)
    while start >= 0:
        end = classes.find(0x2E, start + len(_RUN))
        if end < 0:
            end = len(classes)
        run = data[start:end]
        # A long letter/digit run is a candidate unless it is plain hex (ids, hashes) or a word
        # (but `Authorization`, which introduces a credential of any shape).
        if run.strip(_HEX_BYTES) and (
            not run.isalpha()
            or len(run) >= _LONG_WORD
            or run.startswith(_ALPHA_PREFIXES_BYTES)
            or run.lower() == _KEYWORD
        ):
            return _SUSPICIOUS
        start = classes.find(_RUN, end)
    if _has_card(data):
        return _SUSPICIOUS
    return _URL_SHAPE if b"://" in data and b"@" in data else _CLEAN


def _scan(data: bytes, table: bytes) -> int:
    """`_scan_py`, by the C scan when it is built."""
    if _native_scan is None:
        return _scan_py(data, table)
    return _native_scan(
        data, table, _DIGITS, _ALPHA_PREFIXES_BYTES, len(_RUN), _CARD_DIGITS, _CARD_MAX_DIGITS,
        _LONG_WORD, _KEYWORD,
    )


def _suspicious(data: bytes, table: bytes) -> bool:
    """The test on `data` (lines joined by line feeds, or one line), its bytes mapped by `table`."""
    verdict = _scan(data, table)
    return bool(
        verdict == _SUSPICIOUS
        or (verdict & _URL_SHAPE and _URL_CREDENTIALS.search(data) is not None)
    )


def _has_card(data: bytes) -> bool:
    """Thirteen digits, spaces or dashes in a row where the card detector's own pattern matches
    (a UUID's digit groups often join up, but between letters and dashes, where no card may
    stand). The pattern runs over each such run only, one byte past it for its lookahead; its
    lookbehind sees the byte before the run."""
    digits = data.translate(_DIGITS)
    hit = digits.find(_CARD)
    while hit >= 0:
        end = digits.find(b".", hit)
        if end < 0:
            end = len(digits)
        if _CARD_SHAPE.search(data, hit, end + 1) is not None:
            return True
        hit = digits.find(_CARD, end)
    return False
