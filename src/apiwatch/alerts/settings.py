"""The `[alerts]` config section: rule folders, delivery policy and the channels.

```toml
[alerts]
rules = ["rules/"]            # YAML rule files or folders, beside the built-in catalogue
catalogue = true
replay_seconds = 3600         # ledger window replayed into the engine after a restart
replay_max_records = 1000000  # ... and at most this many records of it
retry_base_seconds = 1.0      # first retry delay; doubles per failure up to retry_max_seconds
failure_threshold = 5         # consecutive failures before a channel raises its own alert

[[alerts.channels]]
name = "soc"
type = "webhook"              # webhook | slack | email | syslog
url = "https://soc.example/hook"
secret = "..."                # HMAC-SHA256 key of the webhook signature
```

`config.py` keeps the section as a raw table (like `[sanitize]`); `AlertsConfig.from_mapping`
validates it into these typed settings, with ConfigError naming the key at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from apiwatch.detect import SEVERITIES
from apiwatch.errors import ConfigError

CHANNEL_TYPES = ("webhook", "slack", "email", "syslog")


@dataclass(frozen=True)
class ChannelConfig:
    """One delivery channel; which keys matter depends on `type` (see `channels.py`)."""

    name: str
    type: str
    #: Alerts below this severity are not sent to this channel.
    min_severity: str = "low"
    url: str = ""  # webhook, slack
    secret: str = ""  # webhook: HMAC-SHA256 key
    host: str = ""  # email (SMTP server), syslog (receiver)
    port: int = 0
    protocol: str = "tcp"  # syslog: tcp | udp
    format: str = "cef"  # syslog: cef | rfc5424
    sender: str = ""  # email From
    recipients: tuple[str, ...] = ()  # email To
    starttls: bool = False
    username: str = ""
    password: str = ""
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class AlertsConfig:
    """Validated `[alerts]` settings."""

    rules: tuple[str, ...] = ()
    catalogue: bool = True
    lateness_seconds: float = 60.0
    replay_seconds: float = 3600.0
    #: At most this many of the newest ledger records are replayed (bounds restart time).
    replay_max_records: int = 1_000_000
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    failure_threshold: int = 5
    channels: tuple[ChannelConfig, ...] = field(default_factory=tuple)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AlertsConfig:
        """Validate the raw `[alerts]` table."""
        values = _typed(cls, {k: v for k, v in data.items() if k != "channels"}, "alerts")
        raw_channels = data.get("channels", [])
        if not isinstance(raw_channels, list):
            raise ConfigError("alerts.channels: expected an array of tables")
        channels = tuple(_channel(spec, i) for i, spec in enumerate(raw_channels))
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ConfigError("alerts.channels: channel names must be unique")
        return cls(**values, channels=channels)


def _channel(spec: Any, i: int) -> ChannelConfig:
    where = f"alerts.channels[{i}]"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a table")
    channel = ChannelConfig(**_typed(ChannelConfig, spec, where))
    if not channel.name:
        raise ConfigError(f"{where}: name is required")
    if channel.type not in CHANNEL_TYPES:
        raise ConfigError(f"{where}.type: {channel.type!r} is not one of {CHANNEL_TYPES}")
    if channel.min_severity not in SEVERITIES:
        raise ConfigError(f"{where}.min_severity: not one of {SEVERITIES}")
    needs = {"webhook": ("url", "secret"), "slack": ("url",), "email": ("host", "sender"),
             "syslog": ("host", "port")}[channel.type]
    for key in needs:
        if not getattr(channel, key):
            raise ConfigError(f"{where}: a {channel.type} channel needs {key}")
    if channel.protocol not in ("tcp", "udp") or channel.format not in ("cef", "rfc5424"):
        raise ConfigError(f"{where}: protocol is tcp or udp, format is cef or rfc5424")
    if channel.type == "email" and not channel.recipients:
        raise ConfigError(f"{where}: an email channel needs recipients")
    return channel


def _typed(cls: type[Any], data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`data` checked against the dataclass's field defaults' types (lists become tuples)."""
    known = {f.name: f for f in fields(cls) if f.name != "channels"}
    out: dict[str, Any] = {}
    for key, value in data.items():
        spec = known.get(key)
        if spec is None:
            raise ConfigError(f"{where}: unknown key {key!r}")
        default = "" if spec.default is MISSING else spec.default  # required: name, type
        out[key] = _check(value, default, f"{where}.{key}")
    return out


def _check(value: Any, default: Any, where: str) -> Any:
    if isinstance(value, str) and not isinstance(default, str | tuple):
        value = _parse_env(value, default, where)  # an APIWATCH_ALERTS_* variable
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings")
        return tuple(value)
    if isinstance(default, bool) or isinstance(value, bool):
        if not isinstance(value, bool) or not isinstance(default, bool):
            raise ConfigError(f"{where}: expected {type(default).__name__}")
        return value
    if isinstance(default, float) and isinstance(value, int | float):
        return float(value)
    if not isinstance(value, type(default)):
        raise ConfigError(f"{where}: expected {type(default).__name__}, got {value!r}")
    return value


def _parse_env(text: str, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        if text.lower() not in {"1", "0", "true", "false", "yes", "no"}:
            raise ConfigError(f"{where}: {text!r} is not a boolean")
        return text.lower() in {"1", "true", "yes"}
    try:
        return type(default)(text)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a valid {type(default).__name__}") from None
