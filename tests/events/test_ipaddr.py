"""The C-speed IP checks agree with `ipaddress` on every input (differential, hypothesis)."""

from __future__ import annotations

import ipaddress

from hypothesis import example, given
from hypothesis import strategies as st

from apiwatch.events.ipaddr import canonical_text, is_ip, packed_ip

_ALPHABET = st.sampled_from([*"0123456789abcdefABCDEF:.%x-/ \x00", "\u0661"])
_SPELLINGS = st.text(_ALPHABET, max_size=45)
_ADDRESSES = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)


def _reference(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@given(st.one_of(_SPELLINGS, _ADDRESSES, _ADDRESSES.map(str.upper)))
@example("01.2.3.4")
@example("1.2.3.04")
@example("::ffff:1.2.3.4")
@example("fe80::1%eth0")
@example("1.2.3.4\x00")
@example("\u0661.2.3.4")
@example("1:2:3:4:5:6:7:8:9")
@example("::1.2.3")
def test_packed_ip_accepts_exactly_what_ipaddress_accepts(text: str) -> None:
    """An address the index keys is one `ipaddress` takes, packed to the same bytes."""
    expected = _reference(text)
    assert is_ip(text) == (expected is not None)
    packed = packed_ip(text)
    if expected is None or "%" in text:
        assert packed is None
    else:
        assert packed == bytes([expected.version]) + expected.packed
        assert canonical_text(packed) == str(expected)
