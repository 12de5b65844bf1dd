"""Every encoder keeps each event one record that parses back, whatever its strings hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fmt_samples import STRING_FIELDS, expected_text, parse_cef, parse_syslog, unframe
from hypothesis import given, settings
from hypothesis import strategies as st

from apiwatch.errors import ConfigError
from apiwatch.events import make_event
from apiwatch.formats import encode_cef, encode_ecs, encode_ocsf, encode_syslog
from apiwatch.formats.syslog import frame_octet_counted

#: Characters that end a line for some reader (what str.splitlines breaks on, plus NUL/ESC).
BREAKERS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00\x1b"


def _string_payloads(shared_data: Path) -> list[tuple[str, str]]:
    data = json.loads((shared_data / "payloads" / "injection_payloads.json").read_text())
    return [(p["id"], p["payload"]) for p in data["payloads"] if isinstance(p["payload"], str)]


def _event(payload: str) -> dict[str, Any]:
    fields = dict.fromkeys(STRING_FIELDS, payload)
    return make_event("authn_login_fail", fields, message=payload, reason=payload)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def check_all_formats(payload: str) -> None:
    """Encode an event carrying `payload` in every string field; check each format parses."""
    event = _event(payload)
    expected = expected_text(payload)

    for line in (encode_ecs(event), encode_ocsf(event)):
        text = line.decode("utf-8")
        assert text.endswith("\n")
        assert not any(c in text[:-1] for c in BREAKERS)
        parsed = json.loads(text)
        assert expected in _strings(parsed)
    assert json.loads(encode_ecs(event))["labels.x"] == expected

    cef = encode_cef(event).decode("utf-8")
    assert not any(c in cef[:-1] for c in BREAKERS)
    header, extension = parse_cef(cef)
    assert header[4] == "authn_login_fail"
    assert expected.startswith(extension["suser"])
    assert expected.startswith(extension["msg"])

    message = encode_syslog(event)
    assert not any(c in message.decode("utf-8") for c in BREAKERS)
    assert unframe(frame_octet_counted(message) * 2) == [message, message]
    head, params, msg = parse_syslog(message)
    assert head[5] == "authn_login_fail"
    assert params["user.name"] == expected
    assert msg["user.name"] == expected


def test_every_payload_in_every_string_field_stays_one_record(shared_data: Path) -> None:
    """Each injection payload in all string fields gives one parseable record per format."""
    payloads = _string_payloads(shared_data)
    assert len(payloads) > 30
    for _, payload in payloads:
        check_all_formats(payload)


@settings(max_examples=150, deadline=None)
@given(st.text(st.characters(exclude_categories=())))
def test_arbitrary_text_stays_one_record(text: str) -> None:
    """Arbitrary text, surrogates and controls included, never breaks a record."""
    check_all_formats(text)


def test_cef_header_delimiters_are_escaped() -> None:
    """A pipe or trailing backslash in the CEF name cannot shift the header fields."""
    line = encode_cef(make_event("authn_login_fail"), vendor="a|b\\", product="p\nq")
    assert b"p\\u000aq" in line
    header, _ = parse_cef(line.decode())
    assert header[1:3] == ["a|b\\", "p\nq"]


def test_cef_puts_ipv6_sources_in_c6a1() -> None:
    """CEF `src` is IPv4 only; an IPv6 source goes to `c6a1` with its label."""
    _, ext = parse_cef(encode_cef(make_event("authz_fail", {"source.ip": "2001:db8::1"})).decode())
    assert ext["c6a1"] == "2001:db8::1"
    assert ext["c6a1Label"] == "source.ip"
    assert "src" not in ext


def test_syslog_header_fields_are_printable_ascii() -> None:
    """Spaces and non-ASCII in header fields become `_`; absent ones are the NILVALUE."""
    event = make_event("authn_login_fail", {"host.name": "my host é"})
    head, _, _ = parse_syslog(encode_syslog(event, app_name="", facility=16))
    assert head[0] == str(16 * 8 + 4)
    assert head[2:5] == ["my_host__", "-", "-"]


def test_syslog_octet_count_is_in_bytes() -> None:
    """RFC 6587 MSG-LEN counts octets, not characters."""
    assert frame_octet_counted("üü☃".encode()) == b"7 " + "üü☃".encode()


def test_syslog_refuses_a_bad_facility() -> None:
    """A facility outside 0..23 is a configuration error, not a corrupt PRI."""
    with pytest.raises(ConfigError):
        encode_syslog(make_event("authn_login_fail"), facility=24)
