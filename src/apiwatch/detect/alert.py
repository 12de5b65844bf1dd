"""The Alert a detection rule raises: what fired, on whom, how often, and from which events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apiwatch.events import format_timestamp, uuid7

#: Severities from least to most urgent.
SEVERITIES = ("low", "medium", "high", "critical")
#: How many event ids an alert keeps as a sample.
SAMPLE_IDS = 10


def _stamp(ts: float) -> str:
    return format_timestamp(round(ts * 1_000_000) * 1000)


@dataclass(slots=True)
class Alert:
    """One alert: a rule fired for one group (the values of the fields it groups by).

    `count` is the number of matching events of the group folded into this alert, the ones
    that crossed the threshold plus those of repeats within the suppression window;
    `suppressed` counts those repeats. Times are event times in seconds since the epoch.
    """

    rule: str
    title: str
    severity: str
    group: dict[str, Any]
    first_seen: float
    last_seen: float
    count: int
    reason: str
    event_ids: list[str] = field(default_factory=list)
    suppressed: int = 0
    status: str = "open"
    tenant: str | None = None
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = uuid7(round(self.first_seen * 1e9))

    def fold(self, count: int, last_seen: float, event_ids: list[str]) -> None:
        """Fold a repeat that fell within the suppression window into this alert."""
        self.suppressed += 1
        self.count += count
        self.last_seen = max(self.last_seen, last_seen)
        room = SAMPLE_IDS - len(self.event_ids)
        if room > 0:
            self.event_ids.extend(event_ids[:room])

    def to_json(self) -> dict[str, Any]:
        """The alert as the JSON object of the API: `id`, `rule`, `severity`, `status`,
        `group`, `count`, `first_seen`, `last_seen`, `event_ids`, and more."""
        out: dict[str, Any] = {
            "id": self.id,
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity,
            "status": self.status,
            "group": dict(self.group),
            "count": self.count,
            "first_seen": _stamp(self.first_seen),
            "last_seen": _stamp(self.last_seen),
            "event_ids": list(self.event_ids),
            "suppressed": self.suppressed,
            "reason": self.reason,
        }
        if self.tenant is not None:
            out["tenant"] = self.tenant
        return out
