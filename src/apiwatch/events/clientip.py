"""The client's IP address behind trusted reverse proxies.

Proxy headers are walked right to left: each proxy appends the address it received the request
from, so a hop is believed only when the address that wrote it (the socket peer, then each hop in
turn) is a trusted proxy, and the first untrusted address is the client. Everything a client sends
lies to the left of what trusted proxies append, so it is never reached; a header from an untrusted
peer is not even read.

One header is read, `X-Forwarded-For` by default (what nginx, HAProxy, Envoy and cloud load
balancers append) or `Forwarded` (RFC 7239) — never both, because a header the proxies do not
write is wholly client-controlled: preferring `Forwarded` when a proxy only appends
`X-Forwarded-For` would hand the client IP to whoever sends a `Forwarded` header. Any other name
(`X-Real-IP`, `CF-Connecting-IP`) is read as a comma-separated address list like XFF.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping

from apiwatch.errors import ConfigError

Headers = Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]

#: The entry of `trusted_proxies` that trusts a missing peer (a proxy on a Unix socket).
UNIX_SOCKET = "unix"

_CACHE_MAX = 4096
# `[v6]` or `[v6]:port`, else `v4:port` (one colon); RFC 7239 section 6 allows an obfuscated
# port (`_abc`); XFF writers (Azure) append numeric ports.
_BRACKETED = re.compile(r"\[([^\]]+)\](?::(\d{1,5}|_[\w.-]+))?", re.ASCII)
_V4_PORT = re.compile(r"([\d.]+):(\d{1,5}|_[\w.-]+)", re.ASCII)


def _normalize(text: str) -> str | None:
    """`text` as a canonical address string (IPv4-mapped IPv6 as IPv4), None if not an address."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def _node_address(node: str) -> str:
    """The address part of a node (`1.2.3.4:80`, `[::1]:80`, `::1`); "" for a bad port."""
    m = _BRACKETED.fullmatch(node) if node.startswith("[") else _V4_PORT.fullmatch(node)
    if m is None:
        return "" if node.startswith("[") else node
    port = m.group(2)
    if port and port.isdigit() and int(port) > 65535:
        return ""
    return m.group(1)


def _forwarded_for(element: str) -> str:
    """The `for=` node of one RFC 7239 `Forwarded` element, unquoted; "" if absent or repeated.

    Splitting on `,` and `;` ignores quoting on purpose: no valid node contains either, and a
    malicious quoted value only breaks elements left of the proxies' own, which are never reached.
    """
    found = [value for key, sep, value in (pair.partition("=") for pair in element.split(";"))
             if sep and key.strip().lower() == "for"]
    if len(found) != 1:  # RFC 7239 section 4: a parameter MUST NOT occur twice in an element
        return ""
    value = found[0].strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace("\\", "")  # quoted-pair; a valid node has none
    return value


class ClientIPResolver:
    """Finds the client address from the socket peer and one proxy header.

    `trusted_proxies` are CIDRs or addresses (IPv4 and IPv6); the entry `unix` also trusts a
    missing peer. With none, headers are ignored and the peer is the client. Raises ConfigError
    naming a bad entry.
    """

    def __init__(self, trusted_proxies: Iterable[str], *, header: str = "x-forwarded-for") -> None:
        entries = [p.strip() for p in trusted_proxies]
        self._trust_unix = UNIX_SOCKET in entries
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            if entry == UNIX_SOCKET:
                continue
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ConfigError(f"trusted proxy {entry!r} is not an IP address or CIDR") from None
        self._nets = tuple(nets)
        self._header = header.lower()
        self._header_names = {self._header, self._header.encode("latin-1")}
        self._rfc7239 = self._header == "forwarded"
        # raw address text -> (canonical address, trusted), or None when it is not an address.
        # Peers repeat, so most requests cost one dict lookup here.
        self._seen: dict[str, tuple[str, bool] | None] = {}

    def _classify(self, text: str) -> tuple[str, bool] | None:
        try:
            return self._seen[text]
        except KeyError:
            pass
        canonical = _normalize(text)
        result = None
        if canonical is not None:
            addr = ipaddress.ip_address(canonical)
            result = (canonical, any(addr in net for net in self._nets))
        if len(self._seen) >= _CACHE_MAX:
            self._seen.clear()  # header values are attacker-chosen: bound the memory they take
        self._seen[text] = result
        return result

    def _values(self, headers: Headers) -> list[str]:
        names = self._header_names
        items = headers.items() if isinstance(headers, Mapping) else headers
        return [
            v.decode("latin-1") if isinstance(v, bytes) else v
            for k, v in items
            if k.lower() in names
        ]

    def resolve(self, peer: str | None, headers: Headers) -> str | None:
        """The client address, canonical; None when the peer is missing or not an address."""
        if peer is None:
            if not self._trust_unix:
                return None
            client = None
        else:
            seen = self._classify(peer)
            if seen is None:
                return None
            client, trusted = seen
            if not trusted:
                return client
        values = self._values(headers)
        if not values:
            return client
        hops = ",".join(values).split(",")
        for hop in reversed(hops):
            node = _forwarded_for(hop) if self._rfc7239 else hop.strip()
            seen = self._classify(_node_address(node))
            if seen is None:  # malformed, `unknown` or obfuscated: the trail ends here
                return client
            client, trusted = seen
            if not trusted:
                return client
        return client
