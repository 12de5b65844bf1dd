"""Per-request costs in apiwatch.events: client IP resolution and route normalization.

Run: python bench/events_hotpaths.py. Baselines measured in the same run: a dict lookup (the
floor of any per-request work) and `"/".join(path.split("/"))` (the floor of a per-segment pass).
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from apiwatch.events.clientip import ClientIPResolver
from apiwatch.events.routes import normalize_route

NUMBER = 200_000


def _ns(fn: Callable[[], object]) -> float:
    return min(timeit.repeat(fn, number=NUMBER, repeat=3)) / NUMBER * 1e9


def main() -> None:
    resolver = ClientIPResolver(["10.0.0.0/8", "2001:db8:ffff::/48"])
    plain = {"host": "api.example.com", "user-agent": "curl/8.5", "accept": "*/*"}
    proxied = {**plain, "x-forwarded-for": "203.0.113.7, 10.1.1.1"}
    d = {"10.0.0.1": 1}
    simple = "/api/v2/users/42/orders"
    ids = "/users/0191c3a2-7e1f-7abc-8def-0123456789ab/orders/5f2b6c9e0a1d2e3f4a5b6c7d"
    absolute = "http://localhost:8080/tienda1/publico/anadir.jsp?id=1"
    resolve = resolver.resolve
    rows = [
        ("baseline: dict lookup", _ns(lambda: d.get("10.0.0.1")), "dict"),
        ("resolve: untrusted peer, no proxy headers",
         _ns(lambda: resolve("198.51.100.9", plain)), "dict"),
        ("resolve: trusted peer, no proxy header", _ns(lambda: resolve("10.0.0.1", plain)), "dict"),
        ("resolve: trusted peer, XFF with 2 hops",
         _ns(lambda: resolve("10.0.0.1", proxied)), "dict"),
        ("baseline: split/join of a path", _ns(lambda: "/".join(simple.split("/"))), "split"),
        ("normalize_route: /api/v2/users/42/orders", _ns(lambda: normalize_route(simple)), "split"),
        ("normalize_route: uuid + hex ids", _ns(lambda: normalize_route(ids)), "split"),
        ("normalize_route: absolute-form + query", _ns(lambda: normalize_route(absolute)), "split"),
    ]
    base = {kind: ns for name, ns, kind in rows if name.startswith("baseline")}
    print(f"{'operation':<46} {'ns/call':>9} {'x baseline':>11}")
    for name, ns, kind in rows:
        print(f"{name:<46} {ns:>9.0f} {ns / base[kind]:>11.1f}")


if __name__ == "__main__":
    main()
