"""The demo's traffic: steady normal customers, then three attacks on the shop.

Every client names its address in `X-Forwarded-For`, which the shop believes from 127.0.0.1
(its trusted proxy), so that one machine can play many networks:

- customers (10.1.0.0/16, one address each) log in and read their own orders;
- after `attack_after` seconds, credential stuffing: leaked pairs tried from many addresses
  (198.18.0.0/15, RFC 2544 benchmarking space), one or two attempts each;
- a BOLA enumeration: the stolen key of one customer walks the order ids from 203.0.113.66;
- the leaked key of the CI robot is used from 192.0.2.0/24, a network it never came from.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from apiwatch.demo.shop import FIRST_ORDER, Account, order_ids

#: Seconds between two requests of one customer.
PACE = 0.15
STUFFING_ADDRESSES = 60
ENUMERATION_IP = "203.0.113.66"
LEAKED_KEY_IP = "192.0.2.77"


@dataclass(frozen=True)
class Actor:
    """Someone making requests: an account (may be None) and the address it comes from."""

    account: Account | None
    ip: str


def customer_ip(index: int) -> str:
    """The fixed address of the `index`-th customer (a /24 of its own)."""
    return f"10.1.{index}.10"


class Traffic:
    """Threads sending the scenario to the shop at `base_url` until `stop` is called."""

    def __init__(self, base_url: str, accounts: list[Account], *, customers: list[Account],
                 victim: Account, robot: Account, attack_after: float,
                 on_step: Callable[[str], None] = lambda text: None) -> None:
        self.base_url = base_url
        self.accounts = accounts
        self.actors = [Actor(a, customer_ip(i)) for i, a in enumerate([*customers, victim])]
        self.robot = Actor(robot, "10.2.0.5")
        self.victim = victim
        self.attack_after = attack_after
        self.on_step = on_step
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        #: Requests sent, for the summary.
        self.sent = 0

    def start(self) -> None:
        """Start the customers, the robot and the attack timer."""
        for actor in [*self.actors, self.robot]:
            self._spawn(self._customer, actor)
        self._spawn(self._attacks)

    def stop(self) -> None:
        """Stop every thread and wait for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _client(self, ip: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10,
                            headers={"X-Forwarded-For": ip})

    def _send(self, client: httpx.Client, method: str, path: str, **kwargs: Any) -> None:
        try:
            client.request(method, path, **kwargs)
            self.sent += 1
        except httpx.HTTPError:
            pass  # the demo is stopping, or the shop is busy: a lost request is no matter

    def _customer(self, actor: Actor) -> None:
        assert actor.account is not None
        account = actor.account
        mine = order_ids(self.accounts, account.name)
        rng = random.Random(account.name)  # noqa: S311 - traffic shape, not a secret
        with self._client(actor.ip) as client:
            self._send(client, "POST", "/login",
                       json={"user": account.name, "password": account.password})
            while not self._stop.wait(PACE * rng.uniform(0.5, 1.5)):
                if rng.random() < 0.2:
                    self._send(client, "GET", "/products")
                else:
                    self._send(client, "GET", f"/orders/{rng.choice(mine)}",
                               headers={"X-API-Key": account.api_key})

    def _attacks(self) -> None:
        if self._stop.wait(self.attack_after):
            return
        self.on_step(f"attack: credential stuffing from {STUFFING_ADDRESSES} addresses")
        for i in range(STUFFING_ADDRESSES):
            with self._client(f"198.18.{i // 200}.{i % 200 + 1}") as client:
                self._send(client, "POST", "/login",
                           json={"user": f"customer{i:03d}@mail.example", "password": "123456"})
        self.on_step(f"attack: BOLA enumeration with {self.victim.name}'s stolen key")
        with self._client(ENUMERATION_IP) as client:
            for order in range(FIRST_ORDER, FIRST_ORDER + 40):
                self._send(client, "GET", f"/orders/{order}",
                           headers={"X-API-Key": self.victim.api_key})
        assert self.robot.account is not None
        self.on_step(f"attack: {self.robot.account.name}'s leaked key used from {LEAKED_KEY_IP}")
        with self._client(LEAKED_KEY_IP) as client:
            for order in order_ids(self.accounts, self.robot.account.name):
                self._send(client, "GET", f"/orders/{order}",
                           headers={"X-API-Key": self.robot.account.api_key})
