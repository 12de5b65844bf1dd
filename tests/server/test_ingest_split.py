"""How POST /v1/events cuts a body into numbered lines, fuzzed against the rules read one line
at a time."""

from __future__ import annotations

from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from apiwatch.config import ServerConfig
from apiwatch.server.errors import HttpError
from apiwatch.server.ingest import IngestEndpoint

LIMIT = 40
CONFIG = ServerConfig(max_event_bytes=LIMIT, max_batch_events=12)
#: Only `_split` runs: it needs the configuration alone.
ENDPOINT = IngestEndpoint(CONFIG, *cast(Any, (None, None, None, None)))

LINES = st.one_of(
    st.sampled_from([b"", b" ", b"\t", b"\r", b" \r", b"\r\r", b"{}", b'{"a":1}', b"{}\r"]),
    st.sampled_from([b'{"a":1}', b"{}", b"x" * (LIMIT + 1)]),  # bodies the fast path takes
    st.binary(max_size=60),
    st.builds(lambda n, end: b" " * n + end, st.integers(0, 80), st.sampled_from([b"", b"x"])),
)


def plainly(body: bytes) -> tuple[str, object]:
    """The rules read one line at a time: blank lines skipped, one CR before LF dropped,
    numbers counted over every line; then too many events, then events over the limit."""
    lines = [
        (number, raw.removesuffix(b"\r"))
        for number, raw in enumerate(body.split(b"\n"), start=1)
        if raw.strip()
    ]
    if not lines:
        return "empty_batch", None
    if len(lines) > CONFIG.max_batch_events:
        return "too_many_events", None
    oversized = [number for number, data in lines if len(data) > LIMIT]
    if oversized:
        return "event_too_large", oversized
    return "ok", lines


def split(body: bytes) -> tuple[str, object]:
    try:
        numbers, lines = ENDPOINT._split(body, "identity")
        return "ok", list(zip(numbers, lines, strict=True))
    except HttpError as exc:
        return exc.code, exc.extra.get("lines") if exc.extra else None


@given(st.lists(LINES, max_size=16))
def test_a_body_splits_as_its_lines_read_one_by_one(lines: list[bytes]) -> None:
    """Blank and whitespace-only lines (however long), CR LF endings, oversized events and
    too many of them: the same lines, numbers and refusals as the plain reading."""
    body = b"\n".join(lines)
    assert split(body) == plainly(body)


def test_a_long_blank_line_is_no_oversized_event() -> None:
    """Padding longer than an event may be is skipped like any blank line."""
    body = b'{"a":1}\n' + b" " * (LIMIT * 3) + b"\n{}"
    assert split(body) == ("ok", [(1, b'{"a":1}'), (3, b"{}")])
