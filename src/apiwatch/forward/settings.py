"""The `[[forward]]` config list: one table per SIEM destination.

```toml
[[forward]]
name = "siem"
type = "cef"                  # syslog | cef | splunk_hec | elasticsearch | ocsf_file
host = "siem.example"         # syslog, cef
port = 6514
tls = true                    # syslog, cef: RFC 5425 TLS (ca_file, else the system store)

[[forward]]
name = "splunk"
type = "splunk_hec"
url = "https://splunk.example:8088"
token = "..."                 # sent as `Authorization: Splunk <token>`
```

Which keys matter depends on `type` (see `apiwatch.forward.senders`); the delivery policy
(`batch_size`, retries, `failure_threshold`) is common to all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from apiwatch.errors import ConfigError

TYPES = ("syslog", "cef", "splunk_hec", "elasticsearch", "ocsf_file")
_NEEDS = {"syslog": ("host", "port"), "cef": ("host", "port"), "splunk_hec": ("url", "token"),
          "elasticsearch": ("url",), "ocsf_file": ("directory",)}


@dataclass(frozen=True)
class Destination:
    """One validated `[[forward]]` table."""

    name: str
    type: str
    host: str = ""  # syslog, cef
    port: int = 0
    tls: bool = False
    ca_file: str = ""  # syslog, cef, splunk_hec, elasticsearch: CA bundle (PEM) to trust
    url: str = ""  # splunk_hec, elasticsearch: the base URL
    token: str = ""  # splunk_hec
    sourcetype: str = "_json"  # splunk_hec
    source: str = "apiwatch"  # splunk_hec
    index: str = "apiwatch-events"  # elasticsearch
    api_key: str = ""  # elasticsearch: `Authorization: ApiKey <api_key>`
    username: str = ""  # elasticsearch: basic auth
    password: str = ""
    directory: str = ""  # ocsf_file
    max_file_bytes: int = 64 * 1024 * 1024  # ocsf_file: rotate beyond this size
    batch_size: int = 500
    timeout_seconds: float = 10.0
    poll_seconds: float = 1.0
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    failure_threshold: int = 5

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> Destination:
        """A destination from one `[[forward]]` table; bad keys and types are ConfigErrors."""
        kinds = {f.name: str(f.type) for f in fields(cls)}
        unknown = set(data) - set(kinds)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        types: dict[str, type | tuple[type, ...]] = {
            "str": str, "int": int, "float": (int, float), "bool": bool,
        }
        for key, value in data.items():
            wanted = types[kinds[key]]
            if not isinstance(value, wanted) or (wanted is not bool and isinstance(value, bool)):
                raise ConfigError(f"{where}.{key}: expected {kinds[key]}, got {value!r}")
        if not data.get("name") or data.get("type") not in TYPES:
            raise ConfigError(f"{where}: needs a name and a type, one of {TYPES}")
        destination = cls(**data)
        for key in _NEEDS[destination.type]:
            if not getattr(destination, key):
                raise ConfigError(f"{where}: a {destination.type} destination needs {key}")
        if min(destination.batch_size, destination.failure_threshold) < 1 or min(
            destination.poll_seconds, destination.timeout_seconds,
            destination.retry_base_seconds,
        ) <= 0:
            raise ConfigError(f"{where}: sizes, thresholds and durations must be positive")
        return destination


def parse_destinations(tables: Sequence[Mapping[str, Any]]) -> list[Destination]:
    """The `[[forward]]` list of a config, validated; names must be unique."""
    destinations = [Destination.from_mapping(t, f"forward[{i}]") for i, t in enumerate(tables)]
    names = [d.name for d in destinations]
    if len(set(names)) != len(names):
        raise ConfigError("forward: names must be unique")
    return destinations
