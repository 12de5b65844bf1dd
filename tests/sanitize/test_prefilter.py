"""The secrets pre-check's byte scan in C (`sanitize/_prefilter.c`) against its Python
reference (`secrets._scan_py`): the same verdict for any bytes, and the verdicts themselves."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from apiwatch.sanitize import secrets
from apiwatch.sanitize.secrets import (
    _CLASSES,
    _CLEAN,
    _LINE_CLASSES,
    _SUSPICIOUS,
    _URL_SHAPE,
    _scan,
    _scan_py,
    bytes_look_suspicious,
)

#: Bytes the scan tells apart: run bytes (hex and not), separators, the card class, `@`, `/`,
#: `:`, `~`, controls, the line feed, bytes above ASCII (`²` is a digit to `str.isdigit`).
_INTERESTING = b"aZfF09 -._@/:~\x00\x1f\x7f\n\xb2\xb9\xff\"[],"
_PIECES = st.one_of(
    st.binary(max_size=8),
    st.lists(st.sampled_from(_INTERESTING), max_size=30).map(bytes),
    st.sampled_from([
        b"4111 1111 1111 1111", b"4111-1111-1111-1111", b"411111111111", b"https://u:p@h",
        b"@timestamp", b"AKIAIOSFODNN7EXAMPLE", b"Authorization", b"authorizations",
        b"abcdefabcdef0123", b"0123456789abcdef" * 3, b"abcdefghijklmnopqrstuvwxyzabcdefghijklmn",
        b"01a22033-569e-77e1-8177-435227179094", b"eyJhbGciOiJI", b"SKabcdefghijklm",
        b"4111111111111111111111", b" 411111111111 1", b"-4111 1111 1111 1111-",
    ]),
)
_DATA = st.lists(_PIECES, max_size=12).map(b"".join)
_NATIVE = pytest.mark.skipif(secrets._native_scan is None, reason="built without a C compiler")


@_NATIVE
@settings(max_examples=2000, deadline=None)
@given(_DATA, st.sampled_from([_CLASSES, _LINE_CLASSES]))
@example(b"1-8177-435227179094", _CLASSES)  # 17 digits in a UUID's tail: a card's run
@example(b"77e1-8177-4352", _CLASSES)  # 12: not one
@example(b"x 1234567890123456789 y", _CLASSES)  # 19 digits: the most a card has
@example(b"x 12345678901234567890 y", _CLASSES)  # 20: too many, and no end the pattern takes
@example(b"x 12345678901234567890 1 y", _CLASSES)  # a card after the space inside the run
@example(b"1234567890123\xb2", _CLASSES)  # `\xb2` is in the card class, not a digit
@example(b"x://y" + b"\n" * 3 + b"@", _LINE_CLASSES)
def test_the_c_scan_agrees_with_the_reference(data: bytes, table: bytes) -> None:
    assert _scan(data, table) == _scan_py(data, table)


@pytest.mark.parametrize(
    ("data", "verdict"),
    [
        (b'["alice","/login",401,"203.0.113.7"]', _CLEAN),
        (b'"a\x1fb"', _SUSPICIOUS),  # a control character
        (b'"abc~def"', _SUSPICIOUS),  # Azure secrets hold `~`
        (b'"a1b2c3d4e5f6g7"', _SUSPICIOUS),  # 14 letters and digits, not all hex
        (b'"4bf92f3577b34da6a3ce929d0e0e4736"', _CLEAN),  # a trace id: plain hex
        (b'"authentication"', _CLEAN),  # a word
        (b'"abcdefghijklmnopqrstuvwxyzabcdefghijklmn"', _SUSPICIOUS),  # too long for a word
        (b'"AKIAIOSFODNNEXAMPLE"', _SUSPICIOUS),  # all letters, a key's prefix
        (b'"Authorization"', _SUSPICIOUS),
        (b'"4111 1111 1111 1111"', _SUSPICIOUS),  # a card number
        (b'"4111-1111-1111-1111"', _SUSPICIOUS),
        (b'"1-4111 1111 1111 1111"', _SUSPICIOUS),  # after the space: nothing joins it
        (b'"-4111111111111111"', _CLEAN),  # a dash before it: not a card (hex, not a secret)
        (b'"01a22033-569e-77e1-8177-435227179094"', _CLEAN),  # 17 digits, joined to letters
        (b'"01a22033-569e-77ea-8177-4352271f9f9f"', _CLEAN),  # 11: cannot be a card
        (b'"https://u:p@example.com"', _URL_SHAPE),
        (b'{"@timestamp":"x","user.name":"a@b.c"}', _CLEAN),  # `@` without `://`
        (b'"a\nb"', _SUSPICIOUS),  # a line feed inside one event's text is a control
    ],
)
def test_verdicts(data: bytes, verdict: int) -> None:
    """What the scan says of typical values (by the C scan where it is built)."""
    assert _scan(data, _CLASSES) == verdict
    assert _scan_py(data, _CLASSES) == verdict


def test_lines_are_separated_by_line_feeds() -> None:
    assert _scan(b'["a"]\n["b"]', _LINE_CLASSES) == _CLEAN
    assert _scan(b'["a"]\n["b"]', _CLASSES) == _SUSPICIOUS


def test_the_reference_decides_when_the_c_scan_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Built without a C compiler, the pre-check gives the same answers by the reference."""
    samples = [b'"4111 1111 1111 1111"', b'"https://u:p@h.io/"', b'"alice@example.com"', b'"x"']
    expected = [bytes_look_suspicious(data) for data in samples]
    monkeypatch.setattr(secrets, "_native_scan", None)
    assert [bytes_look_suspicious(data) for data in samples] == expected == [
        True, True, False, False,
    ]


def test_the_c_scan_is_built() -> None:
    """The README's install builds it here (gcc and Python's headers); without it the
    pre-check takes three times the instructions (`bench/pipeline_instructions.py`)."""
    assert secrets._native_scan is not None


@_NATIVE
@pytest.mark.parametrize(
    "args",
    [
        ("text", _CLASSES),  # a str, not bytes
        (b"x", _CLASSES[:-1]),  # a table of 255 bytes
        (b"x", bytearray(_CLASSES)),
    ],
)
def test_the_c_scan_refuses_wrong_arguments(args: tuple[object, object]) -> None:
    assert secrets._native_scan is not None
    with pytest.raises(TypeError):
        secrets._native_scan(*args, secrets._DIGITS, (b"AKIA",), 13, 13, 19, 40, b"authorization")  # type: ignore[arg-type]


@_NATIVE
def test_the_c_scan_refuses_wrong_constants() -> None:
    scan = secrets._native_scan
    assert scan is not None
    with pytest.raises(TypeError):
        scan(b"x", _CLASSES, secrets._DIGITS, ["AKIA"], 13, 13, 19, 40, b"k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        scan(b"x", _CLASSES, secrets._DIGITS, (), 0, 13, 19, 40, b"k")
    with pytest.raises(ValueError, match="no less"):
        scan(b"x", _CLASSES, secrets._DIGITS, (), 13, 13, 12, 40, b"k")
    with pytest.raises(TypeError):
        scan(b"x", _CLASSES)  # type: ignore[call-arg]


@_NATIVE
@pytest.mark.parametrize(
    ("tail", "verdict"),
    [
        (b"", _CLEAN),
        (b'{"card":"4111 1111 1111 1111"}', _SUSPICIOUS),
        (b'{"token":"a1b2c3d4e5f6g7"}', _SUSPICIOUS),
        (b'{"url":"https://u:p@h"}', _URL_SHAPE),
    ],
)
def test_a_batch_scanned_without_the_gil_gets_the_same_verdict(tail: bytes, verdict: int) -> None:
    """A batch of lines (64 KiB and more) is scanned with the GIL released: same verdicts."""
    line = b'{"@timestamp":"2026-11-27T10:00:00.000000Z","user.name":"alice","status":401}'
    data = b"\n".join([line] * 2000 + [tail])
    assert len(data) > 64 * 1024
    assert _scan(data, _LINE_CLASSES) == _scan_py(data, _LINE_CLASSES) == verdict
