"""The demo's plumbing: an in-process collector, the shop under uvicorn, traffic, an admin.

Everything lives in a fresh temporary data directory and on free 127.0.0.1 ports; `stop`
undoes it all. The catalogue's first-seen rules learn a key's networks over a day of history;
nobody watches a demo for a day, so the demo loads a copy of the catalogue whose learning
period is half the warm-up before the attacks (every other rule is the catalogue's own).
`speed` compresses the scenario (`apiwatch.demo.traffic`), the learning period with it.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import uvicorn
import yaml

from apiwatch.capture.config import Capture
from apiwatch.collector.runtime import Collector
from apiwatch.config import Config, LedgerConfig, ServerConfig, SourceConfig
from apiwatch.demo.shop import Account, build_shop
from apiwatch.demo.traffic import ATTACKS_SECONDS, Traffic, customer_ip
from apiwatch.errors import ApiwatchError
from apiwatch.users import FILE_NAME as USERS_FILE
from apiwatch.users import Accounts

SOURCE = "shop"
ADMIN = "admin"
CUSTOMERS = ("alice", "bob", "carol", "dave")
VICTIM = "erin"
ROBOT = "ci-robot"
#: Requests a key makes before its networks count as learned (the catalogue says 50 a day).
LEARN_EVENTS = 10


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def demo_rules(folder: Path, learn_seconds: float) -> Path:
    """Write the catalogue into `folder` with first-seen windows learning for `learn_seconds`."""
    folder.mkdir()
    catalogue = resources.files("apiwatch.detect") / "catalogue"
    for entry in catalogue.iterdir():
        if not entry.name.endswith(".yaml"):
            continue
        docs = list(yaml.safe_load_all(entry.read_text(encoding="utf-8")))
        for doc in docs:
            for rule in doc if isinstance(doc, list) else [doc]:
                window: dict[str, Any] = rule["window"]
                if window.get("type") == "first_seen":
                    window.update(learn=f"{learn_seconds}s", learn_events=LEARN_EVENTS)
        (folder / entry.name).write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    return folder


class DemoError(ApiwatchError):
    """A part of the demo could not start."""


def _halt(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(10)


class Demo:
    """One run of the demo; `start`, then read `dashboard_url` and the login, then `stop`."""

    def __init__(self, attack_after: float = 60.0, speed: float = 1.0,
                 on_step: Callable[[str], None] = lambda text: None) -> None:
        self.attack_after = attack_after
        self.speed = speed
        self.on_step = on_step
        self.folder = Path(tempfile.mkdtemp(prefix="apiwatch-demo-"))
        self.data = self.folder / "data"
        self.password = secrets.token_urlsafe(12)
        self.accounts = [Account(name) for name in (*CUSTOMERS, VICTIM, ROBOT)]
        self.collector_port = free_port()
        self.collector: Collector | None = None
        self.capture: Capture | None = None
        self.traffic: Traffic | None = None
        self._servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    @property
    def dashboard_url(self) -> str:
        """The collector's base URL, where the dashboard is served."""
        return f"http://127.0.0.1:{self.collector_port}/"

    @property
    def warm_up_seconds(self) -> float:
        """Wall-clock seconds of normal traffic before the first attack."""
        return self.attack_after / self.speed

    @property
    def story_seconds(self) -> float:
        """Wall-clock seconds from the start to the end of the last attack."""
        return (self.attack_after + ATTACKS_SECONDS) / self.speed

    def start(self) -> None:
        """Start the collector, the shop and the traffic; stops what started on failure."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        from apiwatch.server.app import create_app  # noqa: PLC0415 - Starlette, only here

        self.data.mkdir(mode=0o700)
        token = "demo_" + secrets.token_urlsafe(24)
        rules = demo_rules(self.folder / "rules", max(self.warm_up_seconds / 2, 1.0))
        config = Config(
            data_dir=self.data,
            server=ServerConfig(listen=f"127.0.0.1:{self.collector_port}"),
            ledger=LedgerConfig(origin="apiwatch/demo", durability="none"),
            sources={SOURCE: SourceConfig(token=token)},
            alerts={"catalogue": False, "rules": [str(rules)]},
        )
        users = Accounts(self.data / USERS_FILE)
        try:
            users.add(ADMIN, "admin", self.password, actor="demo")
        finally:
            users.close()
        self.collector = Collector.open(config, detect=True)
        app = create_app(config, self.collector.pipeline, tick=self.collector.tick,
                         detection=self.collector.detection)
        self._serve(app, self.collector_port)
        self.capture = Capture(
            "demo-shop", collector=self.dashboard_url, token=token,
            spool_dir=self.folder / "spool", trusted_proxies=["127.0.0.1/32"],
            access_log=True, flush_interval=0.05, ship_interval=0.2, fsync=False,
        )
        shop_port = free_port()
        self._serve(build_shop(self.accounts, self.capture), shop_port)
        by_name = {a.name: a for a in self.accounts}
        self.traffic = Traffic(
            f"http://127.0.0.1:{shop_port}", self.accounts,
            customers=[by_name[n] for n in CUSTOMERS], victim=by_name[VICTIM],
            robot=by_name[ROBOT], attack_after=self.attack_after, speed=self.speed,
            on_step=self.on_step,
        )
        self.traffic.start()

    def _serve(self, app: Any, port: int) -> None:
        # proxy_headers off: the client address behind the trusted proxy is capture's to
        # resolve from X-Forwarded-For, not uvicorn's.
        server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
            lifespan="off", proxy_headers=False,
        ))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        self._servers.append((server, thread))
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise DemoError(f"a demo server did not start on 127.0.0.1:{port}")
            time.sleep(0.02)

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts raised so far, oldest first."""
        if self.collector is None:
            return []
        return list(reversed(self.collector.detection.repository.select(limit=1000)))

    def normal_principals(self) -> set[str]:
        """The addresses, names and key fingerprints of the customers who only behave."""
        found: set[str] = set()
        for index, account in enumerate(self.accounts[:len(CUSTOMERS)]):
            found.add(customer_ip(index))
            found.add(account.name)
            if self.capture is not None:
                found.add(self.capture.fingerprint(account.api_key)[0])
        return found

    def stop(self) -> None:
        """Stop traffic, shop, shipping and collector, then delete the temporary folder.

        Safe to call twice (and after a failed `start`).
        """
        traffic, capture, collector = self.traffic, self.capture, self.collector
        self.traffic = self.capture = self.collector = None
        if traffic is not None:
            traffic.stop()
        # The shop first, then what it queued is shipped while the collector still listens.
        servers = list(reversed(self._servers))
        self._servers.clear()
        for server, thread in servers[:1]:
            _halt(server, thread)
        if capture is not None:
            capture.close()
        for server, thread in servers[1:]:
            _halt(server, thread)
        if collector is not None:
            collector.close()
        shutil.rmtree(self.folder, ignore_errors=True)
