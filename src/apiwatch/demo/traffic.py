"""The demo's traffic: steady normal customers, then three attacks on the shop.

Every client names its address in `X-Forwarded-For`, which the shop believes from 127.0.0.1
(its trusted proxy), so that one machine can play many networks:

- customers (10.1.0.0/16, one address each) log in and read their own orders;
- after `attack_after` seconds, credential stuffing: leaked pairs tried from many addresses
  (198.18.0.0/15, RFC 2544 benchmarking space), one attempt each, over a minute;
- a BOLA enumeration: the stolen key of one customer walks the order ids from 203.0.113.66;
- the leaked key of the CI robot is used from 192.0.2.0/24, a network it never came from.

The scenario's times (the warm-up, each attack's length, the pauses between attacks) are
story seconds, divided by `speed` on the wall clock. Events keep their real timestamps: the
rules count on event time within windows of minutes, which a compressed attack only fills
faster; each attack at speed 1 already fits its rule's window. The customers' own pace is not
compressed, so that `--speed` makes no customer look like a robot.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from apiwatch.demo.shop import FIRST_ORDER, Account, order_ids

#: Seconds between two requests of one customer (wall clock, whatever the speed).
PACE = 0.15
#: Story seconds each attack lasts, and the quiet between two attacks.
STUFFING_SECONDS = 60.0
ENUMERATION_SECONDS = 40.0
LEAKED_KEY_SECONDS = 10.0
PAUSE_SECONDS = 20.0
STUFFING_ADDRESSES = 60
ENUMERATED_ORDERS = 40
#: Story seconds from the first attack to the end of the last.
ATTACKS_SECONDS = STUFFING_SECONDS + ENUMERATION_SECONDS + LEAKED_KEY_SECONDS + 2 * PAUSE_SECONDS
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
    """Threads sending the scenario to the shop at `base_url` until `stop` is called.

    `attack_after` is in story seconds, like the attacks' lengths; `speed` divides them all.
    """

    def __init__(self, base_url: str, accounts: list[Account], *, customers: list[Account],
                 victim: Account, robot: Account, attack_after: float, speed: float = 1.0,
                 on_step: Callable[[str], None] = lambda text: None) -> None:
        self.base_url = base_url
        self.accounts = accounts
        self.actors = [Actor(a, customer_ip(i)) for i, a in enumerate([*customers, victim])]
        self.robot = Actor(robot, "10.2.0.5")
        self.victim = victim
        self.attack_after = attack_after
        self.speed = speed
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

    def _client(self, ip: str = "") -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10,
                            headers={"X-Forwarded-For": ip} if ip else None)

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

    def _paced(self, count: int, story_seconds: float) -> Iterator[int]:
        """0 to `count - 1`, spread evenly over `story_seconds`; ends early on `stop`."""
        gap = story_seconds / count / self.speed
        for i in range(count):
            if i and self._stop.wait(gap):
                return
            yield i

    def _pause(self, story_seconds: float) -> bool:
        """Wait `story_seconds` (compressed); True if the traffic was stopped meanwhile."""
        return self._stop.wait(story_seconds / self.speed)

    def _attacks(self) -> None:
        if self._pause(self.attack_after):
            return
        self.on_step(f"attack: credential stuffing from {STUFFING_ADDRESSES} addresses")
        # One client for every address: a new client per request costs more than the request.
        with self._client() as client:
            for i in self._paced(STUFFING_ADDRESSES, STUFFING_SECONDS):
                self._send(client, "POST", "/login",
                           headers={"X-Forwarded-For": f"198.18.{i // 200}.{i % 200 + 1}"},
                           json={"user": f"customer{i:03d}@mail.example", "password": "123456"})
        if self._pause(PAUSE_SECONDS):
            return
        self.on_step(f"attack: BOLA enumeration with {self.victim.name}'s stolen key")
        with self._client(ENUMERATION_IP) as client:
            for i in self._paced(ENUMERATED_ORDERS, ENUMERATION_SECONDS):
                self._send(client, "GET", f"/orders/{FIRST_ORDER + i}",
                           headers={"X-API-Key": self.victim.api_key})
        if self._pause(PAUSE_SECONDS):
            return
        assert self.robot.account is not None
        robot = self.robot.account
        self.on_step(f"attack: {robot.name}'s leaked key used from {LEAKED_KEY_IP}")
        orders = order_ids(self.accounts, robot.name)
        with self._client(LEAKED_KEY_IP) as client:
            for i in self._paced(len(orders), LEAKED_KEY_SECONDS):
                self._send(client, "GET", f"/orders/{orders[i]}",
                           headers={"X-API-Key": robot.api_key})
        self.on_step("the attacks are over; customers keep shopping")
