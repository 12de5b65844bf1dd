"""Neutralizing log injection (CWE-117) and truncation."""

from __future__ import annotations

import pytest

from apiwatch.sanitize import neutralize
from apiwatch.sanitize.neutralize import truncate


class TestNeutralize:
    def test_clean_text_is_returned_unchanged(self) -> None:
        """A printable string comes back as the very same object (the fast path)."""
        text = "GET /api/v1/users?id=7 \\n stays literal"
        assert neutralize(text) is text

    @pytest.mark.parametrize(
        ("raw", "escaped"),
        [
            ("a\r\nb", "a\\r\\nb"),
            ("a\tb", "a\\tb"),
            ("\x1b[2J", "\\x1b[2J"),
            ("\x00", "\\x00"),
            ("\x7f", "\\x7f"),
            ("\x85", "\\x85"),
            ("\x9b", "\\x9b"),
            ("\u2028\u2029", "\\u2028\\u2029"),
            ("user\u202egnp.exe", "user\\u202egnp.exe"),
            ("\u2066\u2069\u200e\u200f\u061c", "\\u2066\\u2069\\u200e\\u200f\\u061c"),
            ("\ufeffadmin\u200b", "\\ufeffadmin\\u200b"),
            ("\udcff", "\\udcff"),
            ("\U000e0041", "\\U000e0041"),
        ],
    )
    def test_dangerous_characters_become_visible_escapes(self, raw: str, escaped: str) -> None:
        """Every control, separator, format and surrogate character is written as an escape."""
        assert neutralize(raw) == escaped

    def test_backslashes_are_doubled_in_escaped_strings(self) -> None:
        """In a string that needed escaping, a literal backslash cannot pose as an escape."""
        assert neutralize("\\n\n") == "\\\\n\\n"

    def test_printable_unicode_is_kept(self) -> None:
        """Homoglyphs, combining marks and emoji are printable and stay (only length-capped)."""
        text = "\u0430dmin a\u0336 \U0001f600 \u00e9t\u00e9\n"
        assert neutralize(text) == "\u0430dmin a\u0336 \U0001f600 \u00e9t\u00e9\\n"

    def test_result_is_printable_and_stable(self) -> None:
        """Neutralizing twice is the same as once."""
        once = neutralize("a\x1b\\b\u2028")
        assert once.isprintable()
        assert neutralize(once) == once


class TestTruncate:
    def test_marker_and_cap(self) -> None:
        """A long value is cut to the cap and ends with a marker counting the dropped chars."""
        out = truncate("x" * 300 + " " + "y" * 700, 100, escaped=False)
        kept = out.split("…")[0]
        assert len(out) <= 100
        assert kept == "x" * len(kept)
        assert len(kept) > 70
        assert out.endswith(f"…[truncated {1001 - len(kept)} chars]")

    def test_never_splits_an_escape(self) -> None:
        """The cut moves back to the start of an escape sequence it would split."""
        text = "a" * 70 + "\\u2028" * 10
        out = truncate(text, 100, escaped=True)
        kept = out.split("…")[0]
        assert kept.endswith("\\u2028")
        assert len(out) <= 100

    def test_never_splits_a_short_word(self) -> None:
        """A word shorter than 256 characters is dropped whole rather than cut."""
        out = truncate("ab " + "c" * 200, 100, escaped=False)
        assert out == "ab " + "…[truncated 200 chars]"

    def test_counts_characters_cut_before(self) -> None:
        """Characters removed before sanitizing are included in the marker's count."""
        out = truncate("z" * 200, 100, escaped=False, dropped_before=1000)
        assert out.endswith(f"[truncated {1200 - len(out.split('…')[0])} chars]")
