"""The app's own logs through the same sanitizer and emitter: a stdlib handler, a structlog
processor.

```python
logging.getLogger().addHandler(CaptureHandler(capture, level=logging.WARNING))
structlog.configure(processors=[..., CaptureProcessor(capture), structlog.dev.ConsoleRenderer()])
```

A record becomes an `app_log` event (`log.level`, `log.logger`, `message`, `error.*` for an
exception) unless it names a vocabulary action: `extra={"event.action": "authz_fail"}` in the
stdlib, an `action=` key in structlog. Keys that are ECS or apiwatch field names (`user.id`,
`source.ip`, `labels.*`) are copied; anything else stays in the app's log only. While a request
is served, its fields (client IP, request id, route) are added. Records of apiwatch's own
loggers are skipped, so a failing sink cannot feed itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

from apiwatch.capture.config import Capture
from apiwatch.events import field_type

APP_LOG = "app_log"
_OWN_LOGGERS = "apiwatch"
_LEVELS = {"warning": "warn", "exception": "error", "fatal": "critical"}


def _fields(items: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in items.items() if "." in k and field_type(k) is not None}


def _level(name: str) -> str:
    name = name.lower()
    return _LEVELS.get(name, name)


class CaptureHandler(logging.Handler):
    """A `logging.Handler` that emits each record as an event on `capture`."""

    def __init__(self, capture: Capture, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.capture = capture

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record as an event; never raises (failures are counted)."""
        if record.name == _OWN_LOGGERS or record.name.startswith(_OWN_LOGGERS + "."):
            return
        try:
            fields = _fields(record.__dict__)
            action = str(fields.pop("event.action", APP_LOG))
            fields["log.level"] = _level(record.levelname)
            fields["log.logger"] = record.name
            if record.exc_info and record.exc_info[0] is not None:
                fields["error.type"] = record.exc_info[0].__name__
                fields["error.message"] = str(record.exc_info[1])
            self.capture.log.event(action, fields, message=record.getMessage())
        except Exception:  # logging.Handler.handleError would print to stderr; count instead
            self.capture.failed("could not capture a log record")


class CaptureProcessor:
    """A structlog processor that emits each event dict on `capture` and passes it on."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Queue the event dict as an event; return it unchanged for the next processor."""
        try:
            fields = _fields(event_dict)
            action = str(event_dict.get("action", APP_LOG))
            fields["log.level"] = _level(str(event_dict.get("level", method_name)))
            name = event_dict.get("logger") or getattr(logger, "name", None)
            if name:
                fields["log.logger"] = str(name)
            exc = event_dict.get("exc_info")
            if isinstance(exc, BaseException):
                fields["error.type"] = type(exc).__name__
                fields["error.message"] = str(exc)
            self.capture.log.event(action, fields, message=str(event_dict.get("event", "")))
        except Exception:  # a log call must never fail because of capture
            self.capture.failed("could not capture a structlog event")
        return event_dict
