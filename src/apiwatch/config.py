"""One typed configuration: a TOML file, every key overridable by an `APIWATCH_*` variable.

`APIWATCH_<SECTION>_<KEY>` overrides `[section] key` (for example `APIWATCH_SERVER_LISTEN`);
`APIWATCH_SOURCES_<NAME>_TOKEN` sets a source's token. Values from the environment are parsed
as the key's type; a value that does not parse is a ConfigError naming the variable.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from apiwatch.errors import ConfigError

ENV_PREFIX = "APIWATCH_"
DEFAULT_DATA_DIR = Path("apiwatch-data")
CONFIG_NAME = "apiwatch.toml"


@dataclass
class ServerConfig:
    """The collector's HTTP listener and its limits."""

    listen: str = "127.0.0.1:8765"
    tls_cert: str = ""
    tls_key: str = ""
    max_event_bytes: int = 64 * 1024
    max_batch_bytes: int = 8 * 1024 * 1024
    max_batch_events: int = 10_000
    #: A signed batch older or newer than this is refused as stale (replay protection).
    max_clock_skew_seconds: int = 300
    #: Events per second a single source may send, averaged over a burst of ten seconds.
    rate_limit_events_per_second: int = 100_000
    #: Bearer token of GET /v1/events and /v1/sources; empty disables reading over HTTP.
    read_token: str = ""


@dataclass
class LedgerConfig:
    """Where and how the tamper-evident ledger is kept."""

    origin: str = ""
    key_name: str = "apiwatch"
    segment_bytes: int = 64 * 1024 * 1024
    checkpoint_every_records: int = 10_000
    checkpoint_every_seconds: float = 10.0
    #: "durable" fsyncs every batch before it is acknowledged; "none" leaves it to the OS.
    durability: str = "durable"


@dataclass
class StoreConfig:
    """The index store: empty means SQLite inside the data directory."""

    url: str = ""


@dataclass
class SyslogConfig:
    """The syslog receiver (`apiwatch.collector.syslog_server`); empty addresses are off."""

    #: HOST:PORT for RFC 6587 TCP (RFC 5425 TLS when both tls_cert and tls_key are set).
    tcp: str = ""
    #: HOST:PORT for RFC 5426 UDP.
    udp: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    #: The source name the received events are stored under.
    source: str = "syslog"
    max_message_bytes: int = 64 * 1024


@dataclass
class SourceConfig:
    """One sender of events: its bearer token, which is also its HMAC signing key."""

    token: str
    tenant: str = ""


@dataclass
class DashboardConfig:
    """The dashboard at `/` (`apiwatch.server.dashboard`) and its logins."""

    enabled: bool = True
    #: Mark cookies Secure even over plain HTTP (TLS ended by a proxy in front).
    secure_cookies: bool = False
    #: Failed logins per client address, and per user name, before logins are refused...
    login_max_failures: int = 10
    #: ...for the rest of this many seconds.
    login_window_seconds: int = 600


@dataclass
class Config:
    """Everything `apiwatch serve` and the other verbs read."""

    data_dir: Path = DEFAULT_DATA_DIR
    server: ServerConfig = field(default_factory=ServerConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    syslog: SyslogConfig = field(default_factory=SyslogConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    sanitize: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    #: The raw `[alerts]` table, validated by `apiwatch.alerts.AlertsConfig.from_mapping`.
    alerts: dict[str, Any] = field(default_factory=dict)
    #: The raw `[[probes]]` list, validated by `apiwatch.monitor.probes.parse_probes`.
    probes: list[dict[str, Any]] = field(default_factory=list)
    #: The raw `[[forward]]` list, validated by `apiwatch.forward.parse_destinations`.
    forward: list[dict[str, Any]] = field(default_factory=list)

    @property
    def store_url(self) -> str:
        """The store URL, defaulting to SQLite in the data directory."""
        return self.store.url or f"sqlite:///{self.data_dir.absolute() / 'index.sqlite3'}"


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "ledger": LedgerConfig,
    "store": StoreConfig,
    "syslog": SyslogConfig,
    "dashboard": DashboardConfig,
}


def _convert(value: Any, kind: type[Any], where: str) -> Any:
    if isinstance(value, str) and kind is not str:
        try:
            if kind is bool:
                if value.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                    raise ValueError(value)
                return value.lower() in {"1", "true", "yes"}
            return kind(value)
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a valid {kind.__name__}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _build_section(cls: type[Any], data: Mapping[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    unknown = set(data) - set(hints)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return cls(**{k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()})


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        if rest == "data_dir":
            tree["data_dir"] = value
            continue
        if rest.startswith("sources_"):
            source, _, key = rest[len("sources_") :].rpartition("_")
            if source and key in {"token", "tenant"}:
                tree.setdefault("sources", {}).setdefault(source, {})[key] = value
            continue
        for section, cls in (*_SECTIONS.items(), ("sanitize", None), ("alerts", None)):
            if rest.startswith(section + "_"):
                key = rest[len(section) + 1 :]
                if cls is not None and key not in get_type_hints(cls):
                    raise ConfigError(f"{name}: [{section}] has no key {key!r}")
                tree.setdefault(section, {})[key] = value
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read `path` (if given and present), apply `APIWATCH_*` overrides, validate.

    A relative `data_dir` in a file is taken relative to the file's folder.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if "data_dir" in data and not Path(data["data_dir"]).is_absolute():
            data["data_dir"] = str(path.parent / data["data_dir"])
    data = _merge(data, _env_overrides(env))
    unknown = set(data) - {"data_dir", "sanitize", "sources", "alerts", "probes", "forward",
                           *_SECTIONS}
    if unknown:
        raise ConfigError(f"unknown config section(s) {', '.join(sorted(unknown))}")
    sources = {
        name: _build_section(SourceConfig, spec, f"sources.{name}")
        for name, spec in data.get("sources", {}).items()
    }
    sanitize = data.get("sanitize", {})
    if not isinstance(sanitize, dict):
        raise ConfigError("[sanitize] must be a table")
    alerts = data.get("alerts", {})
    if not isinstance(alerts, dict):
        raise ConfigError("[alerts] must be a table")
    probes = data.get("probes", [])
    if not isinstance(probes, list) or not all(isinstance(t, dict) for t in probes):
        raise ConfigError("probes must be an array of tables ([[probes]])")
    forward = data.get("forward", [])
    if not isinstance(forward, list) or not all(isinstance(t, dict) for t in forward):
        raise ConfigError("forward must be an array of tables ([[forward]])")
    return Config(
        data_dir=Path(data.get("data_dir", DEFAULT_DATA_DIR)),
        sources=sources,
        sanitize=sanitize,
        alerts=alerts,
        probes=probes,
        forward=forward,
        **{s: _build_section(cls, data.get(s, {}), s) for s, cls in _SECTIONS.items()},
    )


def new_token() -> str:
    """A fresh source token: 256 random bits, URL-safe."""
    return "aws_" + secrets.token_urlsafe(32)


def default_config_text(source: str = "default") -> str:
    """A commented default config with fresh keys, as `apiwatch serve --init` writes it."""
    server, ledger = ServerConfig(), LedgerConfig()
    fingerprint_key = secrets.token_hex(32)
    lines = [
        "# apiwatch collector configuration. Every key can be overridden by an environment",
        "# variable APIWATCH_<SECTION>_<KEY>, e.g. APIWATCH_SERVER_LISTEN=0.0.0.0:8765.",
        "# This file holds secrets: keep it readable by the collector's user only.",
        "",
        "# Ledger, index store and keys live here (relative to this file).",
        f'data_dir = "{DEFAULT_DATA_DIR}"',
        "",
        "[server]",
        f'listen = "{server.listen}"',
        "# TLS is on when both are set (PEM files).",
        'tls_cert = ""',
        'tls_key = ""',
        f"max_event_bytes = {server.max_event_bytes}",
        f"max_batch_bytes = {server.max_batch_bytes}",
        f"max_batch_events = {server.max_batch_events}",
        f"max_clock_skew_seconds = {server.max_clock_skew_seconds}",
        f"rate_limit_events_per_second = {server.rate_limit_events_per_second}",
        "# Bearer token for reading events over HTTP (GET /v1/events); empty disables it.",
        f'read_token = "{new_token()}"',
        "",
        "[ledger]",
        "# The C2SP checkpoint origin; empty means apiwatch/<hostname>.",
        'origin = ""',
        f'key_name = "{ledger.key_name}"',
        f"checkpoint_every_records = {ledger.checkpoint_every_records}",
        f"checkpoint_every_seconds = {ledger.checkpoint_every_seconds}",
        '# "durable": fsync before acknowledging a batch. "none": leave it to the OS.',
        f'durability = "{ledger.durability}"',
        "",
        "[store]",
        "# Empty: SQLite in data_dir. Or a PostgreSQL DSN: postgresql://user@host/db",
        'url = ""',
        "",
        "[syslog]",
        '# Receive syslog (RFC 5424 / 3164) on HOST:PORT, e.g. "0.0.0.0:6514"; empty is off.',
        'tcp = ""',
        'udp = ""',
        "# TLS on the TCP listener (RFC 5425) when both are set (PEM files).",
        'tls_cert = ""',
        'tls_key = ""',
        'source = "syslog"',
        "",
        "[sanitize]",
        "# Keys API key fingerprints; keep it stable so one key keeps one fingerprint.",
        f'fingerprint_key = "{fingerprint_key}"',
        "",
        "# One table per sender; the token is its bearer token and HMAC key.",
        f"[sources.{source}]",
        f'token = "{new_token()}"',
        'tenant = ""',
        "",
    ]
    return "\n".join(lines)
