"""One typed configuration: a TOML file, every key overridable by an `APIWATCH_*` variable.

`APIWATCH_<SECTION>_<KEY>` overrides `[section] key` (for example `APIWATCH_SERVER_LISTEN`);
`APIWATCH_SOURCES_<NAME>_TOKEN` sets a source's token. The arrays of tables `[[forward]]` and
`[[probes]]` are addressed by position, counted from 0 in the file's order:
`APIWATCH_FORWARD_<INDEX>_<KEY>` (for example `APIWATCH_FORWARD_0_TOKEN`) sets a key of the
INDEX-th table; INDEX equal to the number of tables adds one. Values from the environment are
parsed as the key's type; a value that does not parse is a ConfigError naming the variable.
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
    #: Service token of the /v1 read and alert API, with the analyst role (users' own API
    #: tokens work beside it); empty: only users' tokens.
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
    #: Write the index from a child process, on a second core (`apiwatch.collector.indexer`).
    index_process: bool = True


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
class EnrichConfig:
    """MaxMind-format databases (`.mmdb`) the collector reads network fields from
    (`apiwatch.enrich`); empty is off, and rules needing those fields stay quiet."""

    #: An ASN database (GeoLite2-ASN, GeoIP2-ISP): `source.as.number` and its organization.
    asn_db: str = ""
    #: A country or city database (GeoLite2-Country, GeoIP2-City): `source.geo.country_iso_code`.
    geo_db: str = ""


@dataclass
class Config:
    """Everything `apiwatch serve` and the other verbs read."""

    data_dir: Path = DEFAULT_DATA_DIR
    server: ServerConfig = field(default_factory=ServerConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    syslog: SyslogConfig = field(default_factory=SyslogConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    enrich: EnrichConfig = field(default_factory=EnrichConfig)
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
    "enrich": EnrichConfig,
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


#: The arrays of tables, whose variables are APIWATCH_<ARRAY>_<INDEX>_<KEY>.
_ARRAYS = ("forward", "probes")


def _array_key_types(array: str) -> dict[str, Any]:
    """The keys a `[[forward]]` or `[[probes]]` table may have, and their types."""
    # Imported only when such a variable is set: the probes module brings httpx with it.
    from apiwatch.forward.settings import Destination  # noqa: PLC0415
    from apiwatch.monitor.probes import Probe  # noqa: PLC0415

    return get_type_hints(Destination if array == "forward" else Probe)


def _array_override(array: str, name: str, rest: str, value: str) -> tuple[int, str, Any]:
    """`(index, key, value)` of the variable `name`, whose part after the array is `rest`."""
    index, _, key = rest.partition("_")
    kinds = _array_key_types(array)
    if not index.isdigit() or key not in kinds:
        raise ConfigError(f"{name}: expected {ENV_PREFIX}{array.upper()}_<INDEX>_<KEY> with "
                          f"KEY one of {', '.join(sorted(kinds))}")
    return int(index), key, _convert(value, kinds[key], name)


def _apply_array_overrides(tables: list[dict[str, Any]], overrides: Mapping[int, Any],
                           array: str) -> list[dict[str, Any]]:
    """`tables` with the keys of `overrides` (by index) set; the next index adds a table."""
    merged = [dict(t) for t in tables]
    for index in sorted(overrides):
        if index > len(merged):
            raise ConfigError(f"{ENV_PREFIX}{array.upper()}_{index}_*: there are "
                              f"{len(merged)} [[{array}]] tables, so the next index is "
                              f"{len(merged)}")
        if index == len(merged):
            merged.append({})
        merged[index].update(overrides[index])
    return merged


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        if rest == "data_dir":
            tree["data_dir"] = value
            continue
        array = next((a for a in _ARRAYS if rest.startswith(a + "_")), None)
        if array is not None:
            index, key, converted = _array_override(array, name, rest[len(array) + 1 :], value)
            tree.setdefault(array, {}).setdefault(index, {})[key] = converted
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
    overrides = _env_overrides(env)
    arrays = {a: overrides.pop(a) for a in _ARRAYS if a in overrides}
    data = _merge(data, overrides)
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
    tables: dict[str, list[dict[str, Any]]] = {}
    for array in _ARRAYS:
        found = data.get(array, [])
        if not isinstance(found, list) or not all(isinstance(t, dict) for t in found):
            raise ConfigError(f"{array} must be an array of tables ([[{array}]])")
        tables[array] = _apply_array_overrides(found, arrays.get(array, {}), array)
    return Config(
        data_dir=Path(data.get("data_dir", DEFAULT_DATA_DIR)),
        sources=sources,
        sanitize=sanitize,
        alerts=alerts,
        probes=tables["probes"],
        forward=tables["forward"],
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
        "# variable APIWATCH_<SECTION>_<KEY>, e.g. APIWATCH_SERVER_LISTEN=0.0.0.0:8765; a key of",
        "# the N-th [[forward]] or [[probes]] table (from 0) by APIWATCH_FORWARD_<N>_<KEY>.",
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
        "# Service token of the /v1 read and alert API (analyst role); empty: only the API",
        "# tokens of users (apiwatch users token NAME).",
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
        "# Write the index from a second process (a second core); false writes it inline.",
        "index_process = true",
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
        "[enrich]",
        "# MaxMind-format databases (.mmdb) for source.as.* and source.geo.country_iso_code;",
        "# empty is off (rules that need these fields then stay quiet).",
        'asn_db = ""',
        'geo_db = ""',
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
