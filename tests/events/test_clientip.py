"""Client IP resolution behind trusted proxies (X-Forwarded-For and RFC 7239 Forwarded)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apiwatch.errors import ConfigError
from apiwatch.events.clientip import ClientIPResolver

PROXIES = ["10.0.0.0/8", "2001:db8:ffff::/48"]


@pytest.fixture
def xff() -> ClientIPResolver:
    return ClientIPResolver(PROXIES)


@pytest.fixture
def fwd() -> ClientIPResolver:
    return ClientIPResolver(PROXIES, header="Forwarded")


class TestPeer:
    def test_no_proxies_configured_means_the_peer(self) -> None:
        """Without trusted proxies, headers are ignored and the peer is the client."""
        r = ClientIPResolver([])
        assert r.resolve("10.0.0.1", {"X-Forwarded-For": "203.0.113.7"}) == "10.0.0.1"

    def test_spoofed_xff_from_untrusted_peer_is_ignored(self, xff: ClientIPResolver) -> None:
        """A client that sends X-Forwarded-For itself gets its own address, not the header's."""
        assert xff.resolve("198.51.100.9", {"X-Forwarded-For": "10.0.0.5"}) == "198.51.100.9"

    def test_peer_is_normalized(self, xff: ClientIPResolver) -> None:
        """IPv4-mapped IPv6 peers become IPv4 and IPv6 text is canonical."""
        assert xff.resolve("::ffff:198.51.100.9", {}) == "198.51.100.9"
        assert xff.resolve("2001:DB8:0:0::1", {}) == "2001:db8::1"

    @pytest.mark.parametrize("peer", [None, "", "testclient", "300.1.1.1"])
    def test_missing_or_bad_peer_yields_none(self, xff: ClientIPResolver, peer: str | None) -> None:
        """No usable peer address (and no trust for a Unix socket) gives no client address."""
        assert xff.resolve(peer, {"X-Forwarded-For": "203.0.113.7"}) is None

    def test_unix_socket_peer_can_be_trusted(self) -> None:
        """The `unix` entry trusts a missing peer, so the proxy's header is walked."""
        r = ClientIPResolver(["unix", "10.0.0.0/8"])
        assert r.resolve(None, {"x-forwarded-for": "203.0.113.7"}) == "203.0.113.7"
        assert r.resolve(None, {}) is None

    def test_bad_proxy_entry_is_a_config_error(self) -> None:
        """A trusted proxy that is not an address or CIDR is refused, naming it."""
        with pytest.raises(ConfigError, match=r"10\.0\.0\.0/33"):
            ClientIPResolver(["10.0.0.0/33"])


class TestXForwardedFor:
    def test_trusted_chain_finds_the_client(self, xff: ClientIPResolver) -> None:
        """Trusted hops are skipped right to left; the first untrusted one is the client, and
        whatever the client wrote to its left is not reached."""
        value = "6.6.6.6, 203.0.113.7, 10.1.1.1, 10.2.2.2"
        assert xff.resolve("10.0.0.1", {"X-Forwarded-For": value}) == "203.0.113.7"

    def test_ipv6_chain(self, xff: ClientIPResolver) -> None:
        """IPv6 clients and proxies are walked like IPv4 ones."""
        value = "2001:db8:1::7, 2001:db8:ffff::2"
        assert xff.resolve("2001:db8:ffff::1", {"X-Forwarded-For": value}) == "2001:db8:1::7"

    def test_multiple_header_lines_are_one_list(self, xff: ClientIPResolver) -> None:
        """Repeated header lines join in order, as RFC 9110 section 5.3 says."""
        headers = [("X-Forwarded-For", "6.6.6.6, 203.0.113.7"), ("x-forwarded-for", "10.1.1.1")]
        assert xff.resolve("10.0.0.1", headers) == "203.0.113.7"

    def test_header_names_are_case_insensitive(self, xff: ClientIPResolver) -> None:
        """Header names match in any case, in mappings and in ASGI-style byte pairs."""
        assert xff.resolve("10.0.0.1", {"X-FORWARDED-FOR": "203.0.113.7"}) == "203.0.113.7"
        raw = [(b"x-forwarded-for", b"203.0.113.7")]
        assert xff.resolve("10.0.0.1", raw) == "203.0.113.7"

    def test_ports_and_mapped_addresses(self, xff: ClientIPResolver) -> None:
        """`v4:port`, `[v6]:port` and IPv4-mapped forms give the bare canonical address."""
        assert xff.resolve("10.0.0.1", {"x-forwarded-for": "203.0.113.7:5123"}) == "203.0.113.7"
        assert xff.resolve("10.0.0.1", {"x-forwarded-for": "[2001:db8::7]:443"}) == "2001:db8::7"
        assert xff.resolve("10.0.0.1", {"x-forwarded-for": "::ffff:203.0.113.7"}) == "203.0.113.7"

    @pytest.mark.parametrize(
        ("value", "client"),
        [
            ("203.0.113.7, nonsense", "10.0.0.1"),  # malformed right after the peer: the peer
            ("203.0.113.7, garbage, 10.1.1.1", "10.1.1.1"),  # stops at the last trusted hop
            ("203.0.113.7,, 10.1.1.1", "10.1.1.1"),
            ("unknown", "10.0.0.1"),
            ("203.0.113.7, 10.1.1.1:99999", "10.0.0.1"),  # a port that cannot be
            ("", "10.0.0.1"),
        ],
    )
    def test_malformed_values_stop_the_walk(
        self, xff: ClientIPResolver, value: str, client: str
    ) -> None:
        """A hop that is not an address ends the walk at the last trusted address."""
        assert xff.resolve("10.0.0.1", {"X-Forwarded-For": value}) == client

    def test_all_trusted_gives_the_leftmost(self, xff: ClientIPResolver) -> None:
        """When every hop is a proxy, the leftmost known address is the best answer."""
        assert xff.resolve("10.0.0.1", {"X-Forwarded-For": "10.3.3.3, 10.2.2.2"}) == "10.3.3.3"

    def test_forwarded_is_not_read_when_xff_is_configured(self, xff: ClientIPResolver) -> None:
        """Only the configured header is read: a client's own `Forwarded` is never believed."""
        headers = {"Forwarded": "for=6.6.6.6", "X-Forwarded-For": "203.0.113.7"}
        assert xff.resolve("10.0.0.1", headers) == "203.0.113.7"
        assert xff.resolve("10.0.0.1", {"Forwarded": "for=6.6.6.6"}) == "10.0.0.1"


class TestForwarded:
    def test_quoted_ipv6_with_port(self, fwd: ClientIPResolver) -> None:
        """RFC 7239 section 4 example: `for="[2001:db8:cafe::17]:4711"`."""
        headers = {"Forwarded": 'For="[2001:db8:cafe::17]:4711"'}
        assert fwd.resolve("10.0.0.1", headers) == "2001:db8:cafe::17"

    def test_chain_with_other_parameters(self, fwd: ClientIPResolver) -> None:
        """`proto`, `by` and `host` are ignored; elements are walked right to left."""
        value = "for=6.6.6.6, for=203.0.113.7;proto=https;by=10.0.0.1, for=10.1.1.1;host=api"
        assert fwd.resolve("10.0.0.1", {"forwarded": value}) == "203.0.113.7"

    def test_ipv4_with_port_quoted(self, fwd: ClientIPResolver) -> None:
        """A quoted `v4:port` node gives the address."""
        assert fwd.resolve("10.0.0.1", {"Forwarded": 'for="203.0.113.7:80"'}) == "203.0.113.7"

    @pytest.mark.parametrize("node", ["_hidden", "unknown", '"_SEVKISEK"', "UNKNOWN"])
    def test_obfuscated_and_unknown_stop_at_the_proxy(
        self, fwd: ClientIPResolver, node: str
    ) -> None:
        """RFC 7239 section 6 obfuscated identifiers and `unknown` end the walk at the proxy."""
        assert fwd.resolve("10.0.0.1", {"Forwarded": f"for={node}"}) == "10.0.0.1"
        chain = f"for=203.0.113.7, for={node}, for=10.1.1.1"
        assert fwd.resolve("10.0.0.1", {"Forwarded": chain}) == "10.1.1.1"

    @pytest.mark.parametrize(
        "value",
        ['for="203.0.113.7', "for=203.0.113.7;for=6.6.6.6", "proto=https", "for", 'for="[::1"'],
    )
    def test_malformed_elements_stop_at_the_proxy(self, fwd: ClientIPResolver, value: str) -> None:
        """An unterminated quote, a repeated `for`, a missing `for` or a broken bracket is no
        address: the walk ends at the peer."""
        assert fwd.resolve("10.0.0.1", {"Forwarded": value}) == "10.0.0.1"

    def test_xff_is_not_read_when_forwarded_is_configured(self, fwd: ClientIPResolver) -> None:
        """With `Forwarded` configured, a client's X-Forwarded-For is ignored."""
        assert fwd.resolve("10.0.0.1", {"X-Forwarded-For": "6.6.6.6"}) == "10.0.0.1"


_TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


def _canonical(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    mapped = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) else None
    return str(mapped or addr)


_untrusted_peers = st.ip_addresses().filter(
    lambda a: not any(ipaddress.ip_address(_canonical(a)) in n for n in _TRUSTED)
)
_header_names = st.sampled_from(["X-Forwarded-For", "x-forwarded-for", "Forwarded", "X-Real-IP"])
_ips = st.ip_addresses().map(str)
_header_values = st.one_of(
    st.text(max_size=80),
    st.lists(_ips, min_size=1, max_size=3).map(", ".join),
    st.lists(_ips.map(lambda a: f'for="{a}"'), min_size=1, max_size=3).map(", ".join),
)


@given(
    peer=_untrusted_peers,
    headers=st.lists(st.tuples(_header_names, _header_values), max_size=4),
    header=st.sampled_from(["x-forwarded-for", "forwarded", "x-real-ip"]),
)
def test_headers_from_an_untrusted_peer_never_matter(
    peer: ipaddress.IPv4Address | ipaddress.IPv6Address,
    headers: list[tuple[str, str]],
    header: str,
) -> None:
    """Whatever headers an untrusted peer sends, the client is the peer itself."""
    resolver = ClientIPResolver([str(n) for n in _TRUSTED], header=header)
    assert resolver.resolve(str(peer), headers) == _canonical(peer)


@given(value=st.text(max_size=200), header=st.sampled_from(["x-forwarded-for", "forwarded"]))
def test_any_header_behind_a_trusted_peer_never_raises(value: str, header: str) -> None:
    """Arbitrary header text behind a trusted proxy yields an address string, never an error."""
    resolver = ClientIPResolver(["10.0.0.0/8"], header=header)
    assert isinstance(resolver.resolve("10.0.0.1", {header: value}), str)
