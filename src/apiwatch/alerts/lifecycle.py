"""An alert's life: open, then acknowledged (someone is on it), then resolved.

Every change is a `Transition` kept in the alert's history with who made it, when and why
(the comment). A comment alone is a transition that keeps the status. Resolved is final: a
new episode of the same attack, after the suppression window, is a new alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from apiwatch.errors import ApiwatchError
from apiwatch.events import format_timestamp

Status = Literal["open", "acknowledged", "resolved"]
Action = Literal["raise", "ack", "resolve", "comment"]
STATUSES: tuple[Status, ...] = ("open", "acknowledged", "resolved")
#: The status each action leads to, from the statuses it is allowed in.
_MOVES: dict[Action, tuple[tuple[Status, ...], Status | None]] = {
    "ack": (("open",), "acknowledged"),
    "resolve": (("open", "acknowledged"), "resolved"),
    "comment": (STATUSES, None),
}


class LifecycleError(ApiwatchError):
    """A transition the alert's status does not allow, or an unknown alert."""


@dataclass(frozen=True)
class Transition:
    """One entry of an alert's history."""

    action: Action
    status: Status
    actor: str
    at: float
    comment: str = ""

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON: action, status after it, actor, time, comment."""
        return {"action": self.action, "status": self.status, "actor": self.actor,
                "at": format_timestamp(round(self.at * 1e9)), "comment": self.comment}


def apply(current: Status, action: Action) -> Status:
    """The status after `action`; LifecycleError if `current` does not allow it."""
    if action not in _MOVES:
        raise LifecycleError(f"unknown action {action!r}")
    allowed, after = _MOVES[action]
    if current not in allowed:
        raise LifecycleError(f"cannot {action} an alert that is {current}")
    return current if after is None else after
