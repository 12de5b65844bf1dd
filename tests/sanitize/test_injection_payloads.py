"""Every payload of ../shared/data/payloads/injection_payloads.json, in every string field."""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from pathlib import Path

import orjson
import pytest

from apiwatch.events import Event
from apiwatch.sanitize import Sanitizer

#: Categories a log line must never carry raw: controls, format (bidi, zero width), surrogates,
#: private use, unassigned, line and paragraph separators.
DANGEROUS_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_ESCAPE = re.compile(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|[\\tnr])")
_NAMED = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def dangerous(text: str) -> list[str]:
    """The dangerous characters in `text`."""
    return [c for c in text if unicodedata.category(c) in DANGEROUS_CATEGORIES]


def unescape(text: str) -> str:
    """Invert `neutralize` on a string it escaped."""
    return _ESCAPE.sub(lambda m: _NAMED.get(m[1]) or chr(int(m[1][1:], 16)), text)


def load_payloads(shared_data: Path) -> list[tuple[str, str]]:
    data = json.loads((shared_data / "payloads/injection_payloads.json").read_text())
    payloads = []
    for entry in data["payloads"]:
        if isinstance(entry.get("payload"), str):
            payloads.append((entry["id"], entry["payload"]))
        elif "payload_bytes_hex" in entry:
            raw = bytes.fromhex(entry["payload_bytes_hex"])
            payloads.append((entry["id"], raw.decode("utf-8", "surrogateescape")))
    return payloads


def recovered(sanitized: str, payload: str) -> str:
    """What a reader gets back from a sanitized value (the kept part, if truncated)."""
    kept = sanitized.split("…[truncated ", maxsplit=1)[0]
    return kept if payload.isprintable() else unescape(kept)


def test_payload_file_has_every_class(shared_data: Path) -> None:
    """The data file is there and holds string and byte payloads (so the loop below is real)."""
    ids = {name for name, _ in load_payloads(shared_data)}
    assert {"crlf_forged_line", "ansi_clear_screen", "bidi_rlo", "invalid_utf8_bytes"} <= ids
    assert len(ids) >= 40


def test_every_payload_in_every_string_field(shared_data: Path, event: Event) -> None:
    """No dangerous character survives in any field; the payload stays readable in escaped form."""
    sanitizer = Sanitizer()
    fields = [name for name, value in event.items() if isinstance(value, str)]
    for payload_id, payload in load_payloads(shared_data):
        for name in [*fields, "tags", "labels.note"]:
            target = copy.deepcopy(event)
            target[name] = [payload, "ok"] if name == "tags" else payload
            out = sanitizer(target)
            blob = json.dumps(json.loads(orjson.dumps(out)), ensure_ascii=False)
            assert not dangerous(blob), (payload_id, name)
            value = out[name][0] if name == "tags" else out[name]
            got = recovered(value, payload)
            if name in out.get("apiwatch.truncated", []):
                assert payload.startswith(got), (payload_id, name)
            else:
                assert got == payload, (payload_id, name, value)


@pytest.mark.parametrize("key", ["labels.a\nb", "labels.\x1b[31mred", "labels.\u202eevil"])
def test_label_keys_are_neutralized(key: str) -> None:
    """A label key with dangerous characters is renamed to its escaped form."""
    out = Sanitizer()({"labels.ok": "1", key: "v"})
    assert all(not dangerous(name) for name in out)
    assert out["labels.ok"] == "1"
    assert len(out) == 2


def test_huge_value_is_capped(event: Event) -> None:
    """A 100k value is cut to the field's cap, marked, and the field listed as truncated."""
    event["user.name"] = "A" * 100_000
    out = Sanitizer()(event)
    assert len(out["user.name"]) <= 1024
    assert out["user.name"].endswith(f"…[truncated {100_000 - out['user.name'].index('…')} chars]")
    assert out["apiwatch.truncated"] == ["user.name"]


def test_deep_nesting_is_bounded() -> None:
    """A value nested deeper than the limit is replaced by a marker, not recursed into."""
    deep: list[object] = []
    node = deep
    for _ in range(500):
        child: list[object] = []
        node.append(child)
        node = child
    out = Sanitizer()({"labels.x": deep})
    assert "[TRUNCATED:depth]" in orjson.dumps(out).decode()
