"""IPv4 source addresses in the SQLite store: ids computed from the address, not interned.

Interning gives every new address a `terms` row and two index entries (the value and the ip
key), about a fifth of the indexer's work per event when every event comes from a new address
(callgrind, `bench/ingest_bench.py`'s traffic). An IPv4 address fits in the id itself instead:
its id is the address as an integer minus 2**32, negative, so never a sequential term id (those
count up from 1), nor the absent id 0. Ids keep the addresses' order, so a CIDR block of IPv4 is
a range of ids, and the dotted text is computed back from the id in SQL.

IPv6 addresses (128 bits) are still interned, and so are the IPv4 addresses of a store written
before this scheme: an address with a `terms` row keeps that row's id, the writer learning it
with the rest of the dictionary, so each address has one id. Queries therefore look at both:
the `terms` row if there is one, the computed id otherwise.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from socket import AF_INET, inet_pton

_BASE = 1 << 32


def address_id(text: str) -> int | None:
    """The computed id of an IPv4 address, None for anything else (IPv6 included).

    `inet_pton` takes the IPv4 spellings `packed_ip` takes, and only the canonical one of each
    address (no leading zeros, four parts), so the text is the address's stored text.
    """
    try:
        return int.from_bytes(inet_pton(AF_INET, text)) - _BASE
    except (OSError, ValueError):  # ValueError: NUL or a character outside ASCII
        return None


def v4_range(network: IPv4Network) -> tuple[int, int]:
    """The first and last ids of the addresses in `network`."""
    return int(network.network_address) - _BASE, int(network.broadcast_address) - _BASE


def v4_text(column: str) -> str:
    """SQL for the dotted text of the IPv4 address whose id `column` holds (a negative id)."""
    address = f"({column} + {_BASE})"
    return " || '.' || ".join(
        f"(({address} >> {shift}) & 255)" for shift in (24, 16, 8, 0)
    )
